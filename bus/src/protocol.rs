//! TODO(bus helper): protocol
