//! The access log PostgREST writes to stdout, one Apache "combined" line
//! per answer, filtered by `log-level`: `crit` logs nothing, `error` the
//! answers of status 500 and up, `warn` 400 and up, `info` and `debug`
//! every answer.

use std::io::Write as _;

/// `log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Nothing.
    Crit,
    /// Server errors.
    Error,
    /// Client and server errors.
    Warn,
    /// Everything.
    Info,
    /// Everything.
    Debug,
}

impl std::str::FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "crit" => Self::Crit,
            "error" => Self::Error,
            "warn" => Self::Warn,
            "info" => Self::Info,
            "debug" => Self::Debug,
            other => {
                return Err(format!(
                    "invalid log-level {other:?}: expected crit, error, warn, info or debug"
                ));
            }
        })
    }
}

impl LogLevel {
    /// Whether an answer of `status` is logged.
    pub fn logs(self, status: u16) -> bool {
        match self {
            Self::Crit => false,
            Self::Error => status >= 500,
            Self::Warn => status >= 400,
            Self::Info | Self::Debug => true,
        }
    }
}

/// One request as the log line tells it.
#[derive(Debug)]
pub struct Entry<'a> {
    /// The client's address, if known.
    pub peer: Option<&'a str>,
    /// The database role that answered.
    pub role: Option<&'a str>,
    /// Seconds since the epoch.
    pub time: u64,
    /// `GET /items?id=eq.1 HTTP/1.1`.
    pub request_line: &'a str,
    /// Status.
    pub status: u16,
    /// Body bytes, if known.
    pub size: Option<usize>,
    /// `Referer`.
    pub referer: &'a str,
    /// `User-Agent`.
    pub user_agent: &'a str,
}

/// `[02/Dec/2026:01:59:34 +0000]`'s inside, for UTC.
fn clf_time(unix: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = supa_core::time::CivilTime::from_unix(unix);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        t.day,
        MONTHS[(t.month - 1) as usize],
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

impl Entry<'_> {
    /// The line, without its newline.
    pub fn line(&self) -> String {
        format!(
            "{} - {} [{}] \"{}\" {} {} \"{}\" \"{}\"",
            self.peer.unwrap_or("-"),
            self.role.unwrap_or("-"),
            clf_time(self.time),
            self.request_line,
            self.status,
            self.size.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            self.referer,
            self.user_agent
        )
    }

    /// Writes the line to stdout, as PostgREST does.
    pub fn write(&self) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_filter_by_status() {
        assert!(!LogLevel::Crit.logs(500));
        assert!(LogLevel::Error.logs(500) && !LogLevel::Error.logs(404));
        assert!(LogLevel::Warn.logs(404) && !LogLevel::Warn.logs(200));
        assert!(LogLevel::Info.logs(200));
        assert!("verbose".parse::<LogLevel>().is_err());
    }

    #[test]
    fn lines_are_apache_combined() {
        let e = Entry {
            peer: Some("127.0.0.1"),
            role: Some("anon"),
            time: 1_764_640_774,
            request_line: "GET /items HTTP/1.1",
            status: 200,
            size: Some(12),
            referer: "",
            user_agent: "curl/8.0",
        };
        assert_eq!(
            e.line(),
            "127.0.0.1 - anon [02/Dec/2025:01:59:34 +0000] \"GET /items HTTP/1.1\" 200 12 \"\" \"curl/8.0\""
        );
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf_time(951_782_400), "29/Feb/2000:00:00:00 +0000");
    }
}
