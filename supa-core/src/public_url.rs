//! Where clients reach a service behind the gateway.

/// The base URL clients reach a service at, from the forwarding headers
/// the gateway sets (`X-Forwarded-Proto`, `-Host`, `-Prefix`) or, served
/// directly, `Host` and `default_prefix`; services build the links they
/// hand out (issuer, upload locations) from it.
pub fn public_base_url<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    default_prefix: &str,
) -> String {
    format!(
        "{}://{}{}",
        header("x-forwarded-proto").unwrap_or("http"),
        header("x-forwarded-host")
            .or_else(|| header("host"))
            .unwrap_or("localhost"),
        header("x-forwarded-prefix").unwrap_or(default_prefix),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_win_over_the_direct_ones() {
        let direct = |name: &str| (name == "host").then_some("10.0.0.1:5000");
        assert_eq!(
            public_base_url(direct, "/storage/v1"),
            "http://10.0.0.1:5000/storage/v1"
        );
        let proxied = |name: &str| match name {
            "x-forwarded-proto" => Some("https"),
            "x-forwarded-host" => Some("api.example.com"),
            "x-forwarded-prefix" => Some("/project/abc/storage/v1"),
            "host" => Some("10.0.0.1:5000"),
            _ => None,
        };
        assert_eq!(
            public_base_url(proxied, "/storage/v1"),
            "https://api.example.com/project/abc/storage/v1"
        );
        assert_eq!(
            public_base_url(|_| None, "/auth/v1"),
            "http://localhost/auth/v1"
        );
    }
}
