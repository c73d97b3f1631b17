//! The log output format (`--log-format json|text`) and how its default is chosen.

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use serde::Deserialize;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line: events, span closes (`"kind":"span_close"`) and slow spans
    /// (`"kind":"slow_span"`). The input of `rubra slowlog`.
    #[default]
    Json,
    /// Human-readable lines (tracing-subscriber's `fmt`), plus slow-span warnings.
    Text,
}

impl LogFormat {
    /// `Text` when stderr (where logs go) is a terminal, `Json` otherwise (DESIGN §9).
    #[must_use]
    pub fn default_for_terminal() -> Self {
        if std::io::stderr().is_terminal() {
            Self::Text
        } else {
            Self::Json
        }
    }

    /// The lowercase name used on the command line and in configuration files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Text => "text",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`LogFormat`] from a string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?}: expected \"json\" or \"text\"")]
pub struct ParseLogFormatError(pub String);

impl FromStr for LogFormat {
    type Err = ParseLogFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            _ => Err(ParseLogFormatError(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively_and_rejects_others() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn deserializes_lowercase() {
        let f: LogFormat = serde_json::from_str("\"text\"").expect("valid");
        assert_eq!(f, LogFormat::Text);
        assert_eq!(LogFormat::Json.to_string(), "json");
    }
}
