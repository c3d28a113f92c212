//! Unit tests: templates, variables, units, tmpfiles, host files, the zinit client.

mod render;
