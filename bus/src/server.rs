//! TODO(bus helper): server
