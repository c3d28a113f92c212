//! TODO(bus helper): client
