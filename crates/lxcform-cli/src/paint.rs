//! Colour on terminals (not when `NO_COLOR` is set or `TERM=dumb`), plain text elsewhere.

use std::io::IsTerminal;

use crate::out::{errln, outln};

/// Wraps text in ANSI colours, or not.
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    on: bool,
}

impl Paint {
    fn when(tty: bool) -> Paint {
        let wanted = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::env::var("TERM").map_or(true, |t| t != "dumb");
        Paint { on: tty && wanted }
    }

    /// For text written to stdout.
    pub fn stdout() -> Paint {
        Paint::when(std::io::stdout().is_terminal())
    }

    /// No colour, whatever the output (for tests of layout).
    #[cfg(test)]
    pub fn plain() -> Paint {
        Paint { on: false }
    }

    /// For text written to stderr.
    pub fn stderr() -> Paint {
        Paint::when(std::io::stderr().is_terminal())
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Green: as declared, or created.
    pub fn green(self, text: &str) -> String {
        self.wrap("32", text)
    }

    /// Yellow: changed.
    pub fn yellow(self, text: &str) -> String {
        self.wrap("33", text)
    }

    /// Red: failed, destroyed.
    pub fn red(self, text: &str) -> String {
        self.wrap("31", text)
    }

    /// Dim: unchanged, skipped, details.
    pub fn dim(self, text: &str) -> String {
        self.wrap("2", text)
    }

    /// Bold: names.
    pub fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }
}

/// Prints why a manifest cannot be used (every problem with file, line and column) and gives
/// the exit code of bad usage.
pub fn manifest_error(e: &lxcform::manifest::ManifestError, json: bool) -> u8 {
    if json {
        let problems: Vec<String> = e.to_string().lines().map(String::from).collect();
        let v =
            serde_json::json!({ "failed": true, "msg": "invalid manifest", "problems": problems });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let p = Paint::stderr();
        for line in e.to_string().lines() {
            errln!("{} {line}", p.red("error:"));
        }
        errln!("lxcform: nothing was changed");
    }
    crate::USAGE
}
