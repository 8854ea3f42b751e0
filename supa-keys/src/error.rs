use thiserror::Error;

/// Why a key, a token or a request to sign was refused.
///
/// Every variant is a client-side problem with the input; the methods classify
/// them for HTTP answers instead of callers matching on strings.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The API key is not in either accepted format.
    #[error("malformed API key: {0}")]
    MalformedKey(&'static str),
    /// The key is well formed but its checksum does not match the project it
    /// was presented to: tampered, mistyped, or another project's key.
    #[error("API key checksum does not match this project")]
    ChecksumMismatch,
    /// The JWT cannot be decoded (structure, base64 or JSON).
    #[error("malformed JWT: {0}")]
    MalformedJwt(&'static str),
    /// The JWT's header names an algorithm the project does not use
    /// (`none`, `HS512`, ES256 without an ES256 key...).
    #[error("JWT algorithm {0:?} is not allowed")]
    WrongAlgorithm(String),
    /// A JSON Web Key that is not a P-256 key, or whose field is bad.
    #[error("invalid JWK: bad or missing {0:?}")]
    BadJwk(&'static str),
    /// The JWT's signature does not verify with the project's secret.
    #[error("JWT signature does not match")]
    BadSignature,
    /// The JWT's `exp` lies in the past (beyond the allowed leeway).
    #[error("JWT expired")]
    Expired,
    /// A claim the JWT must carry is absent.
    #[error("JWT is missing the required claim {0:?}")]
    MissingClaim(&'static str),
    /// A claim is present but unusable (wrong type, not yet valid, ...).
    #[error("JWT claim {claim:?} is invalid: {reason}")]
    InvalidClaim {
        /// The claim's name.
        claim: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An HS256 secret shorter than 32 bytes, which brute force can recover.
    #[error("JWT secret must be at least {min} bytes, got {got}")]
    WeakSecret {
        /// The minimum length.
        min: usize,
        /// The length supplied.
        got: usize,
    },
    /// A request that SigV4 cannot sign (a URL without a host, ...).
    #[error("cannot sign request: {0}")]
    Unsignable(&'static str),
    /// A SigV4 signature that cannot be read (its header or query).
    #[error("malformed signature: {0}")]
    MalformedSignature(&'static str),
    /// A SigV4 signature that does not match the request.
    #[error("the request signature does not match")]
    SignatureMismatch,
    /// A presigned URL past its expiry.
    #[error("the request has expired")]
    SignatureExpired,
    /// A signed request whose time is too far from the server's.
    #[error("the difference between the request time and the server's time is too large")]
    RequestTimeSkewed,
}

impl Error {
    /// Whether this is a rejection of an API key (as opposed to a JWT).
    pub fn is_key_error(&self) -> bool {
        matches!(self, Error::MalformedKey(_) | Error::ChecksumMismatch)
    }

    /// Whether this is a rejection of a JWT presented by a client.
    pub fn is_jwt_error(&self) -> bool {
        matches!(
            self,
            Error::MalformedJwt(_)
                | Error::WrongAlgorithm(_)
                | Error::BadSignature
                | Error::Expired
                | Error::MissingClaim(_)
                | Error::InvalidClaim { .. }
        )
    }

    /// Whether this is a rejection of a SigV4 signature a client sent.
    pub fn is_signature_error(&self) -> bool {
        matches!(
            self,
            Error::MalformedSignature(_)
                | Error::SignatureMismatch
                | Error::SignatureExpired
                | Error::RequestTimeSkewed
        )
    }

    /// The HTTP status a gateway answers with: 401 for credentials, 403 for
    /// a SigV4 signature (as S3 answers), 400 for everything else
    /// (configuration or a request that cannot be signed).
    pub fn status(&self) -> u16 {
        if self.is_key_error() || self.is_jwt_error() {
            401
        } else if self.is_signature_error() {
            403
        } else {
            400
        }
    }

    /// PostgREST's code for a rejected JWT: `PGRST301` when it cannot be
    /// decoded or verified, `PGRST303` when its claims are unacceptable.
    pub fn pgrst_code(&self) -> Option<&'static str> {
        match self {
            Error::MalformedJwt(_) | Error::WrongAlgorithm(_) | Error::BadSignature => {
                Some("PGRST301")
            }
            Error::Expired | Error::MissingClaim(_) | Error::InvalidClaim { .. } => {
                Some("PGRST303")
            }
            _ => None,
        }
    }
}
