//! TODO(bus helper): codec
