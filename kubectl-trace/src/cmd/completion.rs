//! `kubectl trace completion bash|zsh|fish|powershell`: shell completion scripts
//! generated from the clap definition.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::errors::Result;

pub const EXAMPLES: &str = "\
Examples:
  # bash, for this shell
  source <(kubectl-trace completion bash)

  # zsh, installed
  kubectl-trace completion zsh > \"${fpath[1]}/_kubectl-trace\"

  # fish
  kubectl-trace completion fish > ~/.config/fish/completions/kubectl-trace.fish";

#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn generate<W: std::io::Write>(shell: Shell, w: &mut W) {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(shell, &mut cmd, "kubectl-trace", w);
}

pub fn execute(args: CompletionArgs, out: &crate::progress::Out) -> Result<()> {
    let mut buf = Vec::new();
    generate(args.shell, &mut buf);
    out.write(&String::from_utf8_lossy(&buf));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_mention_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::PowerShell] {
            let mut buf = Vec::new();
            generate(shell, &mut buf);
            let s = String::from_utf8(buf).unwrap();
            assert!(s.contains("attach"), "{shell:?}");
            assert!(s.contains("kubectl-trace"), "{shell:?}");
        }
    }
}
