//! `kubectl trace version`: the plugin's version and the runner image it uses by default
//! (no API request).

use clap::Args;

use crate::errors::Result;
use crate::manifest::default_image;
use crate::progress::Out;

#[derive(Debug, Clone, Args)]
pub struct VersionArgs {
    /// Output format
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = ["json", "yaml"])]
    pub output: Option<String>,
}

pub fn version_text(args: &VersionArgs) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let image = default_image();
    match args.output.as_deref() {
        Some("json") => format!(
            "{}\n",
            serde_json::to_string_pretty(&serde_json::json!({
                "clientVersion": version,
                "defaultImage": image,
            }))
            .unwrap_or_default()
        ),
        Some("yaml") => format!("clientVersion: {version}\ndefaultImage: {image}\n"),
        _ => format!("kubectl-trace {version}\ndefault image: {image}\n"),
    }
}

pub fn execute(args: VersionArgs, out: &Out) -> Result<()> {
    out.write(&version_text(&args));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines() {
        let t = version_text(&VersionArgs { output: None });
        assert!(t.starts_with(&format!("kubectl-trace {}\n", env!("CARGO_PKG_VERSION"))));
        assert!(t.contains("ghcr.io/kubectl-trace/trace-runner:"));
        let j: serde_json::Value = serde_json::from_str(&version_text(&VersionArgs {
            output: Some("json".into()),
        }))
        .unwrap();
        assert_eq!(j["clientVersion"], env!("CARGO_PKG_VERSION"));
    }
}
