//! AWS Signature Version 4 verification of header-signed requests.
//!
//! Written here rather than taken from the `aws-sigv4` crate because that crate only signs: a
//! server must rebuild the canonical request from what arrived (HTTP/2 `:authority` in place of
//! `Host`, the client's own list and order of signed headers, the date it signed with) and must
//! decide which Kinesis error each failure becomes — MissingAuthenticationToken,
//! IncompleteSignature, UnrecognizedClient, InvalidSignature — with the texts SDKs know.
//!
//! The canonical request follows the AWS rules for services other than S3: the path is
//! normalized (empty and `.` segments dropped, `..` resolved) and URI-encoded once more on top of
//! its wire encoding; query parameters are decoded, strictly re-encoded and sorted; header values
//! are trimmed with inner runs of whitespace collapsed, repeated headers joined with commas.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};
use sha2::{Digest, Sha256};

use crate::codec::civil;
use crate::error::KinesisError;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const TERMINATOR: &str = "aws4_request";
const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// AWS accepts requests dated up to 15 minutes either side of its clock.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(15 * 60);

const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the \
     signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
     service documentation for details.";

type HmacSha256 = Hmac<Sha256>;

/// An access key pair the shim accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keeps secrets out of logs and panic messages.
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Who signed a request that verified, and for which region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    pub access_key_id: String,
    pub region: String,
}

/// Verifies SigV4 `Authorization` headers against a fixed set of access keys.
#[derive(Clone)]
pub struct SigV4Verifier {
    keys: HashMap<String, String>,
    /// How far a request's date may be from the server's clock, either way.
    pub max_skew: Duration,
}

impl std::fmt::Debug for SigV4Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("SigV4Verifier")
            .field("access_key_ids", &ids)
            .field("max_skew", &self.max_skew)
            .finish()
    }
}

impl SigV4Verifier {
    pub fn new(keys: impl IntoIterator<Item = Credentials>) -> Self {
        SigV4Verifier {
            keys: keys
                .into_iter()
                .map(|c| (c.access_key_id, c.secret_access_key))
                .collect(),
            max_skew: DEFAULT_MAX_SKEW,
        }
    }

    pub fn with_max_skew(mut self, max_skew: Duration) -> Self {
        self.max_skew = max_skew;
        self
    }

    /// Whether no access key is configured (every request would be refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies a request signed in the `Authorization` header. The payload hash is the
    /// `x-amz-content-sha256` header when present (which must then match the body, or be
    /// `UNSIGNED-PAYLOAD`), else the SHA-256 of `body`.
    pub fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<VerifiedRequest, KinesisError> {
        let query_signed = query_pairs(uri).any(|(name, _)| name == "X-Amz-Algorithm");
        let Some(auth) = headers.get(AUTHORIZATION) else {
            if query_signed {
                return Err(KinesisError::incomplete_signature(
                    "Query-string (presigned) authentication is not supported; sign the \
                     request with the Authorization header.",
                ));
            }
            return Err(KinesisError::missing_auth());
        };
        if query_signed {
            return Err(KinesisError::invalid_signature(
                "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as \
                 HTTP header.",
            ));
        }
        let auth = auth.to_str().map_err(|_| {
            KinesisError::incomplete_signature("The Authorization header is not valid ASCII.")
        })?;
        let parsed = parse_authorization(auth, headers)?;
        let scope = parse_scope(parsed.credential)?;
        let signed_headers = parse_signed_headers(parsed.signed_headers, auth)?;
        let date = request_date(headers)?;

        if scope.date != date.date_stamp() {
            return Err(KinesisError::invalid_signature(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '{}' != '{}', from '{}'.",
                scope.date,
                date.date_stamp(),
                date.amz_date
            )));
        }

        let Some(secret) = self.keys.get(scope.access_key_id) else {
            return Err(KinesisError::unrecognized_client());
        };

        self.check_skew(&date, now)?;

        let payload_hash = payload_hash(headers, body)?;
        let creq = canonical_request(method, uri, headers, &signed_headers, &payload_hash);
        let sts = string_to_sign(&date.amz_date, &scope.to_string(), &creq);
        let key = signing_key(secret, scope.date, scope.region, scope.service)?;
        let provided = hex::decode(parsed.signature)
            .map_err(|_| KinesisError::invalid_signature(SIGNATURE_MISMATCH))?;
        let mut mac = new_mac(&key)?;
        mac.update(sts.as_bytes());
        // Constant-time comparison: timing must not reveal how much of a guess was right.
        mac.verify_slice(&provided)
            .map_err(|_| KinesisError::invalid_signature(SIGNATURE_MISMATCH))?;

        Ok(VerifiedRequest {
            access_key_id: scope.access_key_id.to_string(),
            region: scope.region.to_string(),
        })
    }

    fn check_skew(&self, date: &RequestDate, now: SystemTime) -> Result<(), KinesisError> {
        let now_secs = epoch_secs(now);
        let skew = i64::try_from(self.max_skew.as_secs()).unwrap_or(i64::MAX);
        let skew_text = if skew % 60 == 0 {
            format!("{} min.", skew / 60)
        } else {
            format!("{skew} sec.")
        };
        let earliest = now_secs.saturating_sub(skew);
        let latest = now_secs.saturating_add(skew);
        if date.epoch_secs < earliest {
            return Err(KinesisError::invalid_signature(format!(
                "Signature expired: {} is now earlier than {} ({} - {skew_text})",
                date.amz_date,
                format_amz_date(earliest),
                format_amz_date(now_secs)
            )));
        }
        if date.epoch_secs > latest {
            return Err(KinesisError::invalid_signature(format!(
                "Signature not yet current: {} is still later than {} ({} + {skew_text})",
                date.amz_date,
                format_amz_date(latest),
                format_amz_date(now_secs)
            )));
        }
        Ok(())
    }
}

/// Signs a request in place the way AWS SDKs do: sets `x-amz-date` and `Authorization`, signing
/// every header present (and `host`, from the URI's authority when there is no `Host` header).
/// For tests and tools that talk to the shim.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    creds: &Credentials,
    region: &str,
    service: &str,
    method: &Method,
    uri: &Uri,
    headers: &mut HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), KinesisError> {
    let secs = epoch_secs(now);
    let amz_date = format_amz_date(secs);
    let date_stamp = &amz_date[..8];
    headers.insert(
        HeaderName::from_static(X_AMZ_DATE),
        HeaderValue::from_str(&amz_date).map_err(|e| KinesisError::internal(e.to_string()))?,
    );
    headers.remove(AUTHORIZATION);
    let mut names: Vec<String> = headers.keys().map(|k| k.as_str().to_string()).collect();
    if !names.iter().any(|n| n == "host") && uri.authority().is_some() {
        names.push("host".to_string());
    }
    names.sort();
    names.dedup();
    let signed: Vec<&str> = names.iter().map(String::as_str).collect();
    let payload_hash = match headers.get(X_AMZ_CONTENT_SHA256).map(HeaderValue::to_str) {
        Some(Ok(v)) => v.to_string(),
        _ => hex::encode(Sha256::digest(body)),
    };
    let scope = format!("{date_stamp}/{region}/{service}/{TERMINATOR}");
    let creq = canonical_request(method, uri, headers, &signed, &payload_hash);
    let sts = string_to_sign(&amz_date, &scope, &creq);
    let key = signing_key(&creds.secret_access_key, date_stamp, region, service)?;
    let mut mac = new_mac(&key)?;
    mac.update(sts.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let value = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        creds.access_key_id,
        signed.join(";")
    );
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&value).map_err(|e| KinesisError::internal(e.to_string()))?,
    );
    Ok(())
}

struct ParsedAuthorization<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

/// Splits `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`. Missing parts are
/// reported together, in AWS's words, ending with the header as received.
fn parse_authorization<'a>(
    auth: &'a str,
    headers: &HeaderMap,
) -> Result<ParsedAuthorization<'a>, KinesisError> {
    let trimmed = auth.trim();
    let (algorithm, rest) = trimmed
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((trimmed, ""));
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|p| !p.is_empty())
    {
        let Some((name, value)) = part.split_once('=') else {
            continue;
        };
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.is_none() && !value.is_empty() {
            *slot = Some(value);
        }
    }
    let mut msg = String::new();
    for (name, value) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed_headers),
    ] {
        if value.is_none() {
            msg.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    if !headers.contains_key(X_AMZ_DATE) && !headers.contains_key(http::header::DATE) {
        msg.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' \
             header. ",
        );
    }
    if !msg.is_empty() {
        msg.push_str("Authorization=");
        msg.push_str(auth);
        return Err(KinesisError::incomplete_signature(msg));
    }
    if algorithm != ALGORITHM {
        return Err(KinesisError::incomplete_signature(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'; only '{ALGORITHM}' is accepted."
        )));
    }
    match (credential, signed_headers, signature) {
        (Some(credential), Some(signed_headers), Some(signature)) => Ok(ParsedAuthorization {
            credential,
            signed_headers,
            signature,
        }),
        _ => Err(KinesisError::incomplete_signature(format!(
            "Authorization={auth}"
        ))),
    }
}

/// `AKID/20150830/us-east-1/kinesis/aws4_request`.
struct Scope<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

impl std::fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}/{TERMINATOR}",
            self.date, self.region, self.service
        )
    }
}

fn parse_scope(credential: &str) -> Result<Scope<'_>, KinesisError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(KinesisError::incomplete_signature(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{credential}'"
        )));
    };
    if terminator != TERMINATOR {
        return Err(KinesisError::incomplete_signature(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not \
             '{terminator}'."
        )));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(KinesisError::incomplete_signature(format!(
            "Credential should be scoped to a date in YYYYMMDD form, not '{date}'."
        )));
    }
    if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
        return Err(KinesisError::incomplete_signature(format!(
            "Credential should name an access key, a region and a service, got '{credential}'."
        )));
    }
    Ok(Scope {
        access_key_id,
        date,
        region,
        service,
    })
}

fn parse_signed_headers<'a>(list: &'a str, auth: &str) -> Result<Vec<&'a str>, KinesisError> {
    let names: Vec<&str> = list.split(';').collect();
    if names
        .iter()
        .any(|n| n.is_empty() || n.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(KinesisError::incomplete_signature(format!(
            "SignedHeaders must be a ';'-separated list of lowercase header names. \
             Authorization={auth}"
        )));
    }
    if !names.contains(&"host") {
        return Err(KinesisError::incomplete_signature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    Ok(names)
}

struct RequestDate {
    /// The date in ISO 8601 basic form, as it enters the string to sign.
    amz_date: String,
    epoch_secs: i64,
}

impl RequestDate {
    fn date_stamp(&self) -> &str {
        &self.amz_date[..8]
    }
}

/// The signing date: `X-Amz-Date` (ISO 8601 basic) when present, else `Date` (RFC 7231).
fn request_date(headers: &HeaderMap) -> Result<RequestDate, KinesisError> {
    let bad = |v: &str| {
        KinesisError::incomplete_signature(format!(
            "Date must be in ISO-8601 'basic format'. Got '{v}'. See \
             http://en.wikipedia.org/wiki/ISO_8601"
        ))
    };
    if let Some(v) = headers.get(X_AMZ_DATE) {
        let text = String::from_utf8_lossy(v.as_bytes());
        let secs = parse_amz_date(text.trim()).ok_or_else(|| bad(&text))?;
        return Ok(RequestDate {
            amz_date: format_amz_date(secs),
            epoch_secs: secs,
        });
    }
    if let Some(v) = headers.get(http::header::DATE) {
        let text = String::from_utf8_lossy(v.as_bytes());
        let secs = parse_http_date(text.trim()).ok_or_else(|| {
            KinesisError::incomplete_signature(format!(
                "Date header must be an RFC 7231 date such as 'Sun, 30 Aug 2015 12:36:00 GMT'. \
                 Got '{text}'."
            ))
        })?;
        return Ok(RequestDate {
            amz_date: format_amz_date(secs),
            epoch_secs: secs,
        });
    }
    Err(KinesisError::incomplete_signature(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    ))
}

/// `20150830T123600Z`.
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    civil::epoch_seconds(
        i64::from(num(0..4)?),
        num(4..6)?,
        num(6..8)?,
        num(9..11)?,
        num(11..13)?,
        num(13..15)?,
    )
}

/// IMF-fixdate, the form HTTP clients send: `Sun, 30 Aug 2015 12:36:00 GMT`.
fn parse_http_date(s: &str) -> Option<i64> {
    let mut it = s.split_ascii_whitespace();
    let (_weekday, day, month, year, time, zone) = (
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    );
    if it.next().is_some() || zone != "GMT" {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let mut hms = time.split(':');
    let (h, m, sec) = (hms.next()?, hms.next()?, hms.next()?);
    if hms.next().is_some() {
        return None;
    }
    civil::epoch_seconds(
        year.parse().ok()?,
        month,
        day.parse().ok()?,
        h.parse().ok()?,
        m.parse().ok()?,
        sec.parse().ok()?,
    )
}

fn format_amz_date(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = civil::from_epoch_seconds(secs);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

fn epoch_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn payload_hash(headers: &HeaderMap, body: &[u8]) -> Result<String, KinesisError> {
    let computed = hex::encode(Sha256::digest(body));
    let Some(declared) = headers.get(X_AMZ_CONTENT_SHA256) else {
        return Ok(computed);
    };
    let declared = String::from_utf8_lossy(declared.as_bytes());
    let declared = declared.trim();
    if declared == UNSIGNED_PAYLOAD {
        return Ok(declared.to_string());
    }
    // The signature covers this header, not the body: it must be the body's hash or the body
    // could be swapped under a valid signature.
    if !declared.eq_ignore_ascii_case(&computed) {
        return Err(KinesisError::invalid_signature(
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ));
    }
    Ok(declared.to_string())
}

fn canonical_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    signed_headers: &[&str],
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(method.as_str());
    out.push('\n');
    out.push_str(&canonical_uri(uri.path()));
    out.push('\n');
    out.push_str(&canonical_query(uri));
    out.push('\n');
    for name in signed_headers {
        out.push_str(name);
        out.push(':');
        out.push_str(&canonical_header_value(name, uri, headers));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

fn canonical_header_value(name: &str, uri: &Uri, headers: &HeaderMap) -> String {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split_ascii_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    if values.is_empty() && name == "host" {
        // HTTP/2 carries the host as the `:authority` pseudo-header, which lands in the URI.
        return uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
    }
    values.join(",")
}

/// The normalized path, encoded on top of its wire encoding (so `%20` signs as `%2520`).
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalized = String::from("/");
    normalized.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    let mut out = String::with_capacity(normalized.len());
    uri_encode(normalized.as_bytes(), true, &mut out);
    out
}

fn query_pairs(uri: &Uri) -> impl Iterator<Item = (&str, &str)> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// Names and values decoded, then encoded with only unreserved characters left bare and sorted
/// by name, then value; `+` is a literal plus, as SigV4 clients mean it.
fn canonical_query(uri: &Uri) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(uri)
        .map(|(n, v)| {
            let mut name = String::new();
            let mut value = String::new();
            uri_encode(&percent_decode(n), false, &mut name);
            uri_encode(&percent_decode(v), false, &mut value);
            (name, value)
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn uri_encode(input: &[u8], keep_slash: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in input {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| char::from(*c).to_digit(16)),
                b.get(i + 2).and_then(|c| char::from(*c).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

fn new_mac(key: &[u8]) -> Result<HmacSha256, KinesisError> {
    // HMAC takes keys of any length; the error exists only for the generic interface.
    <HmacSha256 as Mac>::new_from_slice(key)
        .map_err(|e| KinesisError::internal(format!("HMAC key: {e}")))
}

fn hmac(key: &[u8], data: &str) -> Result<Vec<u8>, KinesisError> {
    let mut mac = new_mac(key)?;
    mac.update(data.as_bytes());
    Ok(mac.finalize().into_bytes().to_vec())
}

fn signing_key(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
) -> Result<Vec<u8>, KinesisError> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date)?;
    let k_region = hmac(&k_date, region)?;
    let k_service = hmac(&k_region, service)?;
    hmac(&k_service, TERMINATOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// 2015-08-30T12:36:00Z, the date of AWS's test suite.
    fn suite_now() -> SystemTime {
        at(1_440_938_160)
    }

    fn suite_verifier() -> SigV4Verifier {
        SigV4Verifier::new([Credentials {
            access_key_id: AKID.into(),
            secret_access_key: SECRET.into(),
        }])
    }

    fn suite_headers(extra: &[(&str, &str)], signed: &str, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        h.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        for (k, v) in extra {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={signed}, Signature={signature}"
        );
        h.insert(AUTHORIZATION, HeaderValue::from_str(&auth).unwrap());
        h
    }

    /// AWS's published SigV4 test suite (AKIDEXAMPLE, us-east-1, service "service",
    /// 20150830T123600Z): request and the signature AWS publishes for it.
    #[test]
    fn aws_test_suite_vectors_verify() {
        struct Vector {
            name: &'static str,
            method: Method,
            target: &'static str,
            headers: &'static [(&'static str, &'static str)],
            body: &'static [u8],
            signed: &'static str,
            signature: &'static str,
        }
        let vectors = [
            Vector {
                name: "get-vanilla",
                method: Method::GET,
                target: "/",
                headers: &[],
                body: b"",
                signed: "host;x-amz-date",
                signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            },
            Vector {
                name: "post-vanilla",
                method: Method::POST,
                target: "/",
                headers: &[],
                body: b"",
                signed: "host;x-amz-date",
                signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            },
            Vector {
                name: "get-vanilla-query-order-key-case",
                method: Method::GET,
                target: "/?Param2=value2&Param1=value1",
                headers: &[],
                body: b"",
                signed: "host;x-amz-date",
                signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            },
            Vector {
                name: "get-vanilla-query-order-value",
                method: Method::GET,
                target: "/?Param1=value2&Param1=value1",
                headers: &[],
                body: b"",
                signed: "host;x-amz-date",
                signature: "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
            },
            Vector {
                name: "get-vanilla-query-unreserved",
                method: Method::GET,
                target: "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                headers: &[],
                body: b"",
                signed: "host;x-amz-date",
                signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
            },
            Vector {
                // The suite's request line carries the raw UTF-8 `ሴ`; on the wire it is %-encoded.
                name: "get-vanilla-utf8-query",
                method: Method::GET,
                target: "/?%E1%88%B4=bar",
                headers: &[],
                body: b"",
                signed: "host;x-amz-date",
                signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
            },
            Vector {
                name: "get-unreserved",
                method: Method::GET,
                target: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                headers: &[],
                body: b"",
                signed: "host;x-amz-date",
                signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
            },
            Vector {
                name: "normalize-path/get-slashes",
                method: Method::GET,
                target: "//example//",
                headers: &[],
                body: b"",
                signed: "host;x-amz-date",
                signature: "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
            },
            Vector {
                name: "get-header-value-order",
                method: Method::GET,
                target: "/",
                headers: &[
                    ("my-header1", "value4"),
                    ("my-header1", "value1"),
                    ("my-header1", "value3"),
                    ("my-header1", "value2"),
                ],
                body: b"",
                signed: "host;my-header1;x-amz-date",
                signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
            },
            Vector {
                name: "get-header-key-duplicate",
                method: Method::GET,
                target: "/",
                headers: &[
                    ("my-header1", "value2"),
                    ("my-header1", "value2"),
                    ("my-header1", "value1"),
                ],
                body: b"",
                signed: "host;my-header1;x-amz-date",
                signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
            },
            Vector {
                name: "get-header-value-trim",
                method: Method::GET,
                target: "/",
                headers: &[("my-header1", " value1"), ("my-header2", "\"a   b   c\"")],
                body: b"",
                signed: "host;my-header1;my-header2;x-amz-date",
                signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
            },
            Vector {
                name: "post-x-www-form-urlencoded",
                method: Method::POST,
                target: "/",
                headers: &[("content-type", "application/x-www-form-urlencoded")],
                body: b"Param1=value1",
                signed: "content-type;host;x-amz-date",
                signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
            },
        ];
        let verifier = suite_verifier();
        for v in vectors {
            let uri: Uri = v.target.parse().unwrap();
            let headers = suite_headers(v.headers, v.signed, v.signature);
            let ok = verifier
                .verify(&v.method, &uri, &headers, v.body, suite_now())
                .unwrap_or_else(|e| panic!("{}: {e}", v.name));
            assert_eq!(ok.access_key_id, AKID, "{}", v.name);
            assert_eq!(ok.region, "us-east-1", "{}", v.name);
        }
    }

    /// The S3 developer guide's GET Object example, which signs `x-amz-content-sha256` and a
    /// `Range` header.
    #[test]
    fn s3_documented_example_verifies() {
        let verifier = SigV4Verifier::new([Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        }]);
        let mut h = HeaderMap::new();
        h.insert(
            "host",
            HeaderValue::from_static("examplebucket.s3.amazonaws.com"),
        );
        h.insert("range", HeaderValue::from_static("bytes=0-9"));
        h.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static(EMPTY_SHA256),
        );
        h.insert("x-amz-date", HeaderValue::from_static("20130524T000000Z"));
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
        );
        let uri: Uri = "/test.txt".parse().unwrap();
        let ok = verifier
            .verify(&Method::GET, &uri, &h, b"", at(1_369_353_600))
            .unwrap();
        assert_eq!(ok.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    }

    #[test]
    fn http2_authority_stands_in_for_host() {
        let mut h = suite_headers(
            &[],
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        );
        h.remove("host");
        let uri: Uri = "https://example.amazonaws.com/".parse().unwrap();
        suite_verifier()
            .verify(&Method::GET, &uri, &h, b"", suite_now())
            .unwrap();
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("//example//"), "/example/");
        assert_eq!(canonical_uri("/a/./b/../c"), "/a/c");
        assert_eq!(canonical_uri("/example%20space/"), "/example%2520space/");
        assert_eq!(canonical_uri("/a:b"), "/a%3Ab");
        let q = |s: &str| canonical_query(&s.parse::<Uri>().unwrap());
        assert_eq!(q("/"), "");
        assert_eq!(q("/?b&a=1"), "a=1&b=");
        assert_eq!(q("/?q=a+b"), "q=a%2Bb");
        assert_eq!(q("/?q=a%20b"), "q=a%20b");
        assert_eq!(q("/?a=10&a=9"), "a=10&a=9");
        assert_eq!(q("/?x=a.b&x=a%2fb"), "x=a%2Fb&x=a.b");
        assert_eq!(q("/?a=1=2"), "a=1%3D2");
    }

    fn kinesis_request(body: &[u8], now: SystemTime, secret: &str) -> (Method, Uri, HeaderMap) {
        let method = Method::POST;
        let uri: Uri = "/".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("localhost:4567"));
        h.insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("Kinesis_20131202.ListStreams"),
        );
        let creds = Credentials {
            access_key_id: AKID.into(),
            secret_access_key: secret.into(),
        };
        sign(
            &creds,
            "us-east-1",
            "kinesis",
            &method,
            &uri,
            &mut h,
            body,
            now,
        )
        .unwrap();
        (method, uri, h)
    }

    #[test]
    fn own_signer_round_trips() {
        let now = at(1_700_000_000);
        let (m, u, h) = kinesis_request(b"{}", now, SECRET);
        let auth = h[AUTHORIZATION].to_str().unwrap();
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/kinesis/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="
        ));
        let ok = suite_verifier().verify(&m, &u, &h, b"{}", now).unwrap();
        assert_eq!(
            ok,
            VerifiedRequest {
                access_key_id: AKID.into(),
                region: "us-east-1".into()
            }
        );
    }

    #[test]
    fn wrong_secret_is_a_signature_mismatch() {
        let now = at(1_700_000_000);
        let (m, u, h) = kinesis_request(b"{}", now, "not-the-secret");
        let e = suite_verifier().verify(&m, &u, &h, b"{}", now).unwrap_err();
        assert_eq!(e.type_name, "InvalidSignatureException");
        assert_eq!(e.status, 400);
        assert_eq!(e.message, SIGNATURE_MISMATCH);
    }

    #[test]
    fn tampered_body_is_a_signature_mismatch() {
        let now = at(1_700_000_000);
        let (m, u, h) = kinesis_request(b"{}", now, SECRET);
        let e = suite_verifier()
            .verify(&m, &u, &h, b"{\"Limit\":1}", now)
            .unwrap_err();
        assert_eq!(e.type_name, "InvalidSignatureException");
        assert_eq!(e.message, SIGNATURE_MISMATCH);
    }

    #[test]
    fn tampered_signed_header_is_a_signature_mismatch() {
        let now = at(1_700_000_000);
        let (m, u, mut h) = kinesis_request(b"{}", now, SECRET);
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("Kinesis_20131202.DeleteStream"),
        );
        let e = suite_verifier().verify(&m, &u, &h, b"{}", now).unwrap_err();
        assert_eq!(e.message, SIGNATURE_MISMATCH);
    }

    #[test]
    fn declared_payload_hash_must_match_the_body() {
        let now = at(1_700_000_000);
        let body = b"{}";
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("localhost"));
        h.insert(
            "x-amz-content-sha256",
            HeaderValue::from_str(&hex::encode(Sha256::digest(body))).unwrap(),
        );
        let creds = Credentials {
            access_key_id: AKID.into(),
            secret_access_key: SECRET.into(),
        };
        let uri: Uri = "/".parse().unwrap();
        sign(
            &creds,
            "us-east-1",
            "kinesis",
            &Method::POST,
            &uri,
            &mut h,
            body,
            now,
        )
        .unwrap();
        let v = suite_verifier();
        v.verify(&Method::POST, &uri, &h, body, now).unwrap();
        let e = v
            .verify(&Method::POST, &uri, &h, b"{\"x\":1}", now)
            .unwrap_err();
        assert_eq!(e.type_name, "InvalidSignatureException");
        assert!(e.message.contains("x-amz-content-sha256"), "{}", e.message);

        // UNSIGNED-PAYLOAD signs the literal instead of a hash.
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("localhost"));
        h.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static(UNSIGNED_PAYLOAD),
        );
        sign(
            &creds,
            "us-east-1",
            "kinesis",
            &Method::POST,
            &uri,
            &mut h,
            body,
            now,
        )
        .unwrap();
        v.verify(&Method::POST, &uri, &h, b"anything", now).unwrap();
    }

    #[test]
    fn stale_and_future_dates_are_refused() {
        let signed_at = at(1_704_067_200); // 2024-01-01T00:00:00Z
        let (m, u, h) = kinesis_request(b"{}", signed_at, SECRET);
        let v = suite_verifier().with_max_skew(Duration::from_secs(5 * 60));
        // Exactly at the edge is still fine.
        v.verify(&m, &u, &h, b"{}", at(1_704_067_200 + 300))
            .unwrap();
        v.verify(&m, &u, &h, b"{}", at(1_704_067_200 - 300))
            .unwrap();

        let e = v
            .verify(&m, &u, &h, b"{}", at(1_704_067_200 + 600))
            .unwrap_err();
        assert_eq!(e.type_name, "InvalidSignatureException");
        assert_eq!(
            e.message,
            "Signature expired: 20240101T000000Z is now earlier than 20240101T000500Z \
             (20240101T001000Z - 5 min.)"
        );
        let e = v
            .verify(&m, &u, &h, b"{}", at(1_704_067_200 - 600))
            .unwrap_err();
        assert_eq!(e.type_name, "InvalidSignatureException");
        assert_eq!(
            e.message,
            "Signature not yet current: 20240101T000000Z is still later than 20231231T235500Z \
             (20231231T235000Z + 5 min.)"
        );
        assert_eq!(SigV4Verifier::new([]).max_skew, Duration::from_secs(900));
    }

    #[test]
    fn missing_authorization() {
        let v = suite_verifier();
        let uri: Uri = "/".parse().unwrap();
        let e = v
            .verify(&Method::POST, &uri, &HeaderMap::new(), b"{}", suite_now())
            .unwrap_err();
        assert_eq!(e.type_name, "MissingAuthenticationTokenException");
        assert_eq!(e.message, "Missing Authentication Token");

        let presigned: Uri = "/?X-Amz-Algorithm=AWS4-HMAC-SHA256".parse().unwrap();
        let e = v
            .verify(
                &Method::POST,
                &presigned,
                &HeaderMap::new(),
                b"",
                suite_now(),
            )
            .unwrap_err();
        assert_eq!(e.type_name, "IncompleteSignatureException");

        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("X"));
        let e = v
            .verify(&Method::POST, &presigned, &h, b"", suite_now())
            .unwrap_err();
        assert_eq!(e.type_name, "InvalidSignatureException");
    }

    #[test]
    fn malformed_authorization_is_incomplete() {
        let v = suite_verifier();
        let uri: Uri = "/".parse().unwrap();
        let check = |auth: &str, date: bool, expect: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
            if date {
                h.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
            }
            h.insert("host", HeaderValue::from_static("example.amazonaws.com"));
            let e = v
                .verify(&Method::POST, &uri, &h, b"", suite_now())
                .unwrap_err();
            assert_eq!(e.type_name, "IncompleteSignatureException", "{auth}");
            assert_eq!(e.status, 400);
            assert_eq!(e.message, expect, "{auth}");
        };
        check(
            "X",
            false,
            "Authorization header requires 'Credential' parameter. Authorization header \
             requires 'Signature' parameter. Authorization header requires 'SignedHeaders' \
             parameter. Authorization header requires existence of either a 'X-Amz-Date' or a \
             'Date' header. Authorization=X",
        );
        check(
            "AWS4-HMAC-SHA256 Signature=b, Credential=a",
            true,
            "Authorization header requires 'SignedHeaders' parameter. \
             Authorization=AWS4-HMAC-SHA256 Signature=b, Credential=a",
        );
        check(
            "AWS4-HMAC-SHA256 Credential=a, SignedHeaders=host, Signature=b",
            true,
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got 'a'",
        );
        check(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws5_request, \
             SignedHeaders=host, Signature=b",
            true,
            "Credential should be scoped with a valid terminator: 'aws4_request', not \
             'aws5_request'.",
        );
        check(
            "AWS4-HMAC-SHA512 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host, Signature=b",
            true,
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512'; only 'AWS4-HMAC-SHA256' is \
             accepted.",
        );
        check(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=x-amz-date, Signature=b",
            true,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        );

        let mut h = suite_headers(&[], "host;x-amz-date", "00");
        h.insert(
            "x-amz-date",
            HeaderValue::from_static("2015-08-30T12:36:00Z"),
        );
        let e = v
            .verify(&Method::GET, &uri, &h, b"", suite_now())
            .unwrap_err();
        assert_eq!(e.type_name, "IncompleteSignatureException");
        assert!(
            e.message
                .starts_with("Date must be in ISO-8601 'basic format'")
        );
    }

    #[test]
    fn unknown_access_key_is_unrecognized() {
        let now = at(1_700_000_000);
        let (m, u, h) = kinesis_request(b"{}", now, SECRET);
        let e = SigV4Verifier::new([Credentials {
            access_key_id: "OTHER".into(),
            secret_access_key: SECRET.into(),
        }])
        .verify(&m, &u, &h, b"{}", now)
        .unwrap_err();
        assert_eq!(e.type_name, "UnrecognizedClientException");
        assert_eq!(
            e.message,
            "The security token included in the request is invalid."
        );
    }

    #[test]
    fn scope_date_must_match_the_request_date() {
        let h = {
            let mut h = suite_headers(&[], "host;x-amz-date", "00");
            h.insert(
                AUTHORIZATION,
                HeaderValue::from_static(
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150829/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
                ),
            );
            h
        };
        let e = suite_verifier()
            .verify(&Method::GET, &"/".parse().unwrap(), &h, b"", suite_now())
            .unwrap_err();
        assert_eq!(e.type_name, "InvalidSignatureException");
        assert_eq!(
            e.message,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '20150829' != '20150830', from '20150830T123600Z'."
        );
    }

    #[test]
    fn non_hex_signature_is_a_mismatch() {
        let h = suite_headers(&[], "host;x-amz-date", "zz");
        let e = suite_verifier()
            .verify(&Method::GET, &"/".parse().unwrap(), &h, b"", suite_now())
            .unwrap_err();
        assert_eq!(e.type_name, "InvalidSignatureException");
        assert_eq!(e.message, SIGNATURE_MISMATCH);
    }

    #[test]
    fn date_header_is_accepted_without_x_amz_date() {
        // Sign by hand with `Date` as the only date header, as some HTTP clients do.
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        h.insert(
            "date",
            HeaderValue::from_static("Sun, 30 Aug 2015 12:36:00 GMT"),
        );
        let uri: Uri = "/".parse().unwrap();
        let signed = ["date", "host"];
        let creq = canonical_request(&Method::GET, &uri, &h, &signed, EMPTY_SHA256);
        let sts = string_to_sign(
            "20150830T123600Z",
            "20150830/us-east-1/service/aws4_request",
            &creq,
        );
        let key = signing_key(SECRET, "20150830", "us-east-1", "service").unwrap();
        let sig = hex::encode(hmac(&key, &sts).unwrap());
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!(
                "AWS4-HMAC-SHA256 Credential={AKID}/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=date;host, Signature={sig}"
            ))
            .unwrap(),
        );
        suite_verifier()
            .verify(&Method::GET, &uri, &h, b"", suite_now())
            .unwrap();
    }

    #[test]
    fn dates_parse_and_format() {
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("20150830T123600"), None);
        assert_eq!(parse_amz_date("20151330T123600Z"), None);
        assert_eq!(parse_amz_date("2015083OT123600Z"), None);
        assert_eq!(
            parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT"),
            Some(1_440_938_160)
        );
        assert_eq!(parse_http_date("Sun, 30 Foo 2015 12:36:00 GMT"), None);
        assert_eq!(parse_http_date("Sun, 30 Aug 2015 12:36:00 PST"), None);
        assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(format_amz_date(0), "19700101T000000Z");
        assert_eq!(epoch_secs(at(5)), 5);
        assert_eq!(epoch_secs(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = Credentials {
            access_key_id: AKID.into(),
            secret_access_key: SECRET.into(),
        };
        assert!(!format!("{c:?}").contains(SECRET));
        assert!(!format!("{:?}", suite_verifier()).contains(SECRET));
    }
}
