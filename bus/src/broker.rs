//! TODO(bus helper): broker
