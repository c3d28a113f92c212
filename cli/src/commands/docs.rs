//! `imagebus completions <shell>` and `imagebus man`: generated from the clap command, so
//! they always match the flags.

use crate::args::{CompletionsArgs, ManArgs};
use anyhow::{Context, Result};
use std::io::Write;

/// Prints the completion script of `a.shell` on stdout.
pub fn completions(a: &CompletionsArgs) -> Result<()> {
    let mut cmd = crate::args::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut cmd, "imagebus", &mut out);
    out.flush()?;
    Ok(())
}

/// Writes imagebus.1 and `imagebus-<sub>.1` pages into `--out-dir`, or prints imagebus.1.
pub fn man(a: &ManArgs) -> Result<()> {
    let cmd = crate::args::command();
    let Some(dir) = &a.out_dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        out.flush()?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir).with_context(|| format!("writing to {}", dir.display()))?;
    Ok(())
}
