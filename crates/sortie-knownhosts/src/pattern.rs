//! OpenSSH's pattern matching (`match.c`), the one matcher of sortie: known_hosts host fields
//! here, and ssh_config `Host` and `Match` lines in sortie-inventory.
//!
//! Owns the two ways OpenSSH matches a known_hosts host field against a lookup name: a
//! comma-separated pattern list with `*` / `?` wildcards and `!` negation
//! ([`match_pattern_list`]), and a hashed field `|1|salt|hash` (HMAC-SHA1 of the lookup name
//! keyed by the salt). It does not know about keys, files or ports; the caller builds the
//! lookup name (see [`crate::lookup_name`]).

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};

/// The prefix OpenSSH writes before a hashed host field (`HASH_MAGIC` in hostfile.h).
const HASH_MAGIC: &str = "|1|";
/// HMAC-SHA1 output and salt length: OpenSSH refuses salts of any other length.
const SHA1_LEN: usize = 20;

/// A parsed host field, ready to be matched against lowercase lookup names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostMatcher {
    /// `host1,[host2]:2222,*.example.com,!bad.example.com`, lowercased once at parse time.
    Patterns(String),
    /// `|1|salt|hash`: matches the single name whose HMAC-SHA1 under `salt` is `hash`.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

/// Why a host field could not be understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostFieldError {
    /// Starts with `|` but is not `|1|<base64 salt of 20 bytes>|<base64 hash of 20 bytes>`.
    BadHash,
}

impl HostMatcher {
    /// Parses a host field. A field starting with `|` must be a well-formed hashed entry, as in
    /// OpenSSH, which treats a bad hash as an invalid line.
    pub(crate) fn parse(field: &str) -> Result<HostMatcher, HostFieldError> {
        if !field.starts_with('|') {
            return Ok(HostMatcher::Patterns(field.to_ascii_lowercase()));
        }
        let rest = field
            .strip_prefix(HASH_MAGIC)
            .ok_or(HostFieldError::BadHash)?;
        let (salt_b64, hash_b64) = rest.split_once('|').ok_or(HostFieldError::BadHash)?;
        let salt = crate::BASE64
            .decode(salt_b64)
            .map_err(|_| HostFieldError::BadHash)?;
        let hash = crate::BASE64
            .decode(hash_b64)
            .map_err(|_| HostFieldError::BadHash)?;
        if salt.len() != SHA1_LEN || hash.len() != SHA1_LEN {
            return Err(HostFieldError::BadHash);
        }
        Ok(HostMatcher::Hashed { salt, hash })
    }

    /// The names of a pattern list made only of literal names (no `*`, `?` or `!`), which
    /// matches a lookup exactly when the lookup is one of them; `None` otherwise.
    pub(crate) fn literal_names(&self) -> Option<impl Iterator<Item = &str>> {
        match self {
            HostMatcher::Patterns(list)
                if !list.contains(['*', '?']) && list.split(',').all(|p| !p.starts_with('!')) =>
            {
                Some(list.split(','))
            }
            _ => None,
        }
    }

    /// True when the field matches `lookup`, which must already be lowercase.
    ///
    /// For a pattern list this is OpenSSH's rule: the line matches when at least one positive
    /// pattern matches and no negated (`!`) pattern matches.
    pub(crate) fn matches(&self, lookup: &str) -> bool {
        match self {
            HostMatcher::Patterns(list) => match_pattern_list(lookup, list) == ListMatch::Positive,
            HostMatcher::Hashed { salt, hash } => {
                let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(lookup.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
        }
    }
}

/// Result of matching a name against a pattern list (OpenSSH returns 1, -1 or 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMatch {
    /// Some positive pattern matched and no negated one did.
    Positive,
    /// A negated pattern matched: the list does not match, whatever else matched.
    Negated,
    /// Nothing matched.
    None,
}

/// OpenSSH `match_pattern_list`: matches `name` against a comma-separated pattern list where
/// `!pattern` negates (a negated match wins over any positive one). Case-sensitive: lower-case
/// both sides for host names, as OpenSSH's `match_hostname` does.
pub fn match_pattern_list(name: &str, list: &str) -> ListMatch {
    let mut positive = false;
    for sub in list.split(',') {
        let (negated, pattern) = match sub.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, sub),
        };
        if glob_match(name.as_bytes(), pattern.as_bytes()) {
            if negated {
                return ListMatch::Negated;
            }
            positive = true;
        }
    }
    if positive {
        ListMatch::Positive
    } else {
        ListMatch::None
    }
}

/// OpenSSH `match_pattern`: whole-string glob match, `*` matches any run of bytes (also none),
/// `?` exactly one byte; case-sensitive.
///
/// Iterative with a single backtrack point, so hostile patterns such as `*a*a*a*b` cannot make
/// it exponential.
pub fn glob_match(text: &[u8], pattern: &[u8]) -> bool {
    let (mut t, mut p) = (0usize, 0usize);
    // Position of the last `*` seen in the pattern and the text position it is currently
    // assumed to stretch to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Computes the hashed host field OpenSSH writes for `name` with `salt`:
/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
pub(crate) fn hash_host(name: &str, salt: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).expect("HMAC takes any key length");
    mac.update(name.as_bytes());
    let hash = mac.finalize().into_bytes();
    format!(
        "{HASH_MAGIC}{}|{}",
        crate::BASE64.encode(salt),
        crate::BASE64.encode(hash)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_basics() {
        assert!(glob_match(b"web1.example.com", b"*.example.com"));
        assert!(glob_match(b"web1", b"web?"));
        assert!(!glob_match(b"web12", b"web?"));
        assert!(glob_match(b"", b"*"));
        assert!(glob_match(b"abc", b"a*c"));
        assert!(glob_match(b"aXbXc", b"a*b*c"));
        assert!(!glob_match(b"abcd", b"a*c"));
        assert!(glob_match(b"[h]:2222", b"[h]:*"));
        assert!(!glob_match(b"h", b"[h]:*"));
        assert!(!glob_match(
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            b"*a*a*a*a*a*a*a*b"
        ));
    }

    #[test]
    fn negation_wins_over_positive() {
        assert_eq!(
            match_pattern_list("bad.example.com", "*.example.com,!bad.example.com"),
            ListMatch::Negated
        );
        assert_eq!(
            match_pattern_list("bad.example.com", "!bad.example.com,*.example.com"),
            ListMatch::Negated
        );
        assert_eq!(
            match_pattern_list("good.example.com", "*.example.com,!bad.example.com"),
            ListMatch::Positive
        );
        // A negation alone never makes a positive match.
        assert_eq!(match_pattern_list("other", "!bad"), ListMatch::None);
    }

    #[test]
    fn hashed_roundtrip_and_bad_hash() {
        let salt = [7u8; 20];
        let field = hash_host("web1", &salt);
        let m = HostMatcher::parse(&field).unwrap();
        assert!(m.matches("web1"));
        assert!(!m.matches("web2"));
        assert_eq!(
            HostMatcher::parse("|1|c2FsdA==|aGFzaA=="),
            Err(HostFieldError::BadHash)
        );
        assert_eq!(HostMatcher::parse("|2|x|y"), Err(HostFieldError::BadHash));
        assert_eq!(HostMatcher::parse("|"), Err(HostFieldError::BadHash));
    }
}
