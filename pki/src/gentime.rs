//! RFC 3161 `genTime`: an ASN.1 GeneralizedTime that may carry fractional seconds.
//!
//! RFC 3161 §2.4.2 defines, inside `TSTInfo`:
//!
//! ```text
//! genTime                      GeneralizedTime,
//! ```
//!
//! > The syntax is: YYYYMMDDhhmmss[.s...]Z
//! > Example: 19990609001326.34352Z
//! >
//! > X.690 | ISO/IEC 8825-1 provides the following restrictions for a
//! > DER-encoding.
//! >
//! > The encoding MUST terminate with a "Z" (which means "Zulu" time). The
//! > decimal point element, if present, MUST be the point option ".". The
//! > fractional-seconds elements, if present, MUST omit all trailing 0's;
//! > if the elements correspond to 0, they MUST be wholly omitted, and the
//! > decimal point element also MUST be omitted.
//!
//! `der`'s own `GeneralizedTime` follows RFC 5280 instead and rejects every fraction, so tokens
//! from authorities that report sub-second precision (openssl with `clock_precision_digits`
//! emits `20250101120000.123Z`) cannot be read with it. [`GenTime`] reads and writes both.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::{DecodeValue, EncodeValue, ErrorKind, FixedTag, Header, Length, Reader, Tag, Writer};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Seconds since the Unix epoch of 0000-01-01T00:00:00Z, the earliest time a four-digit year
/// can express.
const MIN_UNIX_SECONDS: i64 = -62_167_219_200;

/// Seconds since the Unix epoch of 9999-12-31T23:59:59Z, the latest whole second a four-digit
/// year can express.
const MAX_UNIX_SECONDS: i64 = 253_402_300_799;

/// Nanoseconds in one second.
const NANOS_PER_SECOND: u32 = 1_000_000_000;

/// Nanoseconds in one millisecond.
const NANOS_PER_MILLI: u32 = 1_000_000;

/// Length of `YYYYMMDDhhmmss`.
const DIGITS_LEN: usize = 14;

/// Most fraction digits kept: nanosecond precision.
const MAX_FRACTION_DIGITS: usize = 9;

/// Longest value accepted: `YYYYMMDDhhmmss` `.` nine digits `Z`. This bound is also what keeps
/// decoding from reading an attacker-chosen number of bytes.
const MAX_VALUE_LEN: usize = DIGITS_LEN + 1 + MAX_FRACTION_DIGITS + 1;

/// Why a `genTime` value or a time could not be turned into a [`GenTime`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GenTimeError {
    /// The value is too short or too long to be `YYYYMMDDhhmmss[.f...]Z`.
    #[error("generalized time has {len} bytes; expected 15 to 25")]
    InvalidLength {
        /// Length of the value in bytes.
        len: usize,
    },
    /// A byte that must be an ASCII digit is not.
    #[error("generalized time has a non-digit at offset {offset}")]
    InvalidDigit {
        /// Offset of the byte within the value.
        offset: usize,
    },
    /// The value does not end in `Z`: local times and offsets such as `+0100` are not allowed.
    #[error("generalized time must end in 'Z' (UTC)")]
    NotUtc,
    /// The seconds are followed by something other than `.` (a comma, for instance).
    #[error("generalized time has an unexpected byte at offset {offset}; expected '.' or 'Z'")]
    InvalidSeparator {
        /// Offset of the byte within the value.
        offset: usize,
    },
    /// A decimal point with no digits after it.
    #[error("generalized time has a decimal point without fraction digits")]
    EmptyFraction,
    /// More fraction digits than nanosecond precision can hold.
    #[error("generalized time has {digits} fraction digits; at most 9 are supported")]
    FractionTooLong {
        /// Number of fraction digits found.
        digits: usize,
    },
    /// The digits do not name a real calendar date and time of day (month 13, February 30,
    /// hour 24, a leap second, ...).
    #[error("generalized time is not a valid date and time")]
    InvalidDateTime {
        /// What `time` found wrong.
        #[source]
        source: time::error::ComponentRange,
    },
    /// The time lies outside the years 0000 to 9999, or the nanoseconds are not below one
    /// second.
    #[error("time is outside the years 0000 to 9999 that generalized time can express")]
    OutOfRange,
}

impl From<GenTimeError> for der::Error {
    /// `der::Error` has no room for a cause: calendar errors become
    /// [`ErrorKind::DateTime`], every other one a value error on `GeneralizedTime`. Call
    /// [`GenTime::from_der_value`] on the value bytes to learn the precise reason.
    fn from(err: GenTimeError) -> Self {
        match err {
            GenTimeError::InvalidDateTime { .. } | GenTimeError::OutOfRange => {
                ErrorKind::DateTime.into()
            }
            _ => Tag::GeneralizedTime.value_error(),
        }
    }
}

/// Unix seconds in RFC 3339 (UTC), for reports; the bare number when out of range.
pub fn unix_rfc3339(seconds: i64) -> String {
    GenTime::from_unix_timestamp(seconds, 0)
        .map(|g| g.to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

/// The system clock in whole seconds since the Unix epoch (0 for a clock before it): the
/// "now" of every verifier and signer that has not been given one.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An RFC 3161 `genTime`: a UTC instant with up to nanosecond precision, between
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z.
///
/// Decoding is strict about form: exactly `YYYYMMDDhhmmss`, then optionally `.` and one to
/// nine digits, then `Z`; a real calendar date; no leap second (`60`), no local time, no
/// offset, no comma. It tolerates one DER violation: trailing zeros in the fraction
/// (`20250101120000.500Z`, even `20250101120000.0Z`) are read as the value they denote, since
/// some authorities emit them and the instant is unambiguous. Encoding is always canonical:
/// trailing zeros are dropped, and so is the decimal point when the fraction is zero.
///
/// Ordering is chronological. The type implements `der`'s [`FixedTag`], [`DecodeValue`] and
/// [`EncodeValue`], so it can be a field of a `#[derive(Sequence)]` struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GenTime {
    /// Whole seconds since 1970-01-01T00:00:00Z; negative before it. Always within
    /// `MIN_UNIX_SECONDS..=MAX_UNIX_SECONDS`.
    seconds: i64,
    /// Nanoseconds after `seconds`, below one second.
    nanos: u32,
}

impl GenTime {
    /// The instant `seconds` and `nanos` after 1970-01-01T00:00:00Z (`seconds` is negative
    /// before it; `nanos` always counts forwards).
    ///
    /// Fails with [`GenTimeError::OutOfRange`] outside the years 0000 to 9999 or when `nanos`
    /// is one second or more.
    pub fn from_unix_timestamp(seconds: i64, nanos: u32) -> Result<Self, GenTimeError> {
        if !(MIN_UNIX_SECONDS..=MAX_UNIX_SECONDS).contains(&seconds) || nanos >= NANOS_PER_SECOND {
            return Err(GenTimeError::OutOfRange);
        }
        Ok(Self { seconds, nanos })
    }

    /// The instant `millis` milliseconds after 1970-01-01T00:00:00Z (negative before it).
    pub fn from_unix_millis(millis: i64) -> Result<Self, GenTimeError> {
        let seconds = millis.div_euclid(1000);
        // `rem_euclid` is in 0..1000, so this is exact.
        let nanos = Duration::from_millis(millis.rem_euclid(1000).unsigned_abs()).subsec_nanos();
        Self::from_unix_timestamp(seconds, nanos)
    }

    /// The instant a [`SystemTime`] denotes, keeping its full precision.
    pub fn from_system_time(time: SystemTime) -> Result<Self, GenTimeError> {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => {
                let Ok(seconds) = i64::try_from(after.as_secs()) else {
                    return Err(GenTimeError::OutOfRange);
                };
                Self::from_unix_timestamp(seconds, after.subsec_nanos())
            }
            Err(before) => {
                let before = before.duration();
                let Ok(whole) = i64::try_from(before.as_secs()) else {
                    return Err(GenTimeError::OutOfRange);
                };
                match before.subsec_nanos() {
                    0 => Self::from_unix_timestamp(-whole, 0),
                    sub => Self::from_unix_timestamp(-whole - 1, NANOS_PER_SECOND - sub),
                }
            }
        }
    }

    /// The current system time, truncated to whole milliseconds (the precision the
    /// authority reports).
    ///
    /// Fails only if the system clock is set outside the years 0000 to 9999.
    pub fn now_millis() -> Result<Self, GenTimeError> {
        let now = Self::from_system_time(SystemTime::now())?;
        Ok(Self {
            nanos: now.nanos - now.nanos % NANOS_PER_MILLI,
            ..now
        })
    }

    /// Decodes the contents of a GeneralizedTime (the bytes after tag and length), with the
    /// precise reason on failure; see the type documentation for what is accepted.
    pub fn from_der_value(value: &[u8]) -> Result<Self, GenTimeError> {
        // Longer values fail below with the precise reason (too many fraction digits, ...).
        let len = value.len();
        if len <= DIGITS_LEN {
            return Err(GenTimeError::InvalidLength { len });
        }
        let (digits, rest) = value.split_at(DIGITS_LEN);
        if let Some(offset) = digits.iter().position(|b| !b.is_ascii_digit()) {
            return Err(GenTimeError::InvalidDigit { offset });
        }
        let Some((_z, middle)) = rest.split_last().filter(|(z, _)| **z == b'Z') else {
            return Err(GenTimeError::NotUtc);
        };
        let nanos = match middle.split_first() {
            None => 0,
            Some((b'.', fraction)) => parse_fraction(fraction)?,
            Some(_) => {
                return Err(GenTimeError::InvalidSeparator { offset: DIGITS_LEN });
            }
        };

        let year = i32::from(decimal(&digits[0..2])) * 100 + i32::from(decimal(&digits[2..4]));
        let month = Month::try_from(decimal(&digits[4..6]))
            .map_err(|source| GenTimeError::InvalidDateTime { source })?;
        let date = Date::from_calendar_date(year, month, decimal(&digits[6..8]))
            .map_err(|source| GenTimeError::InvalidDateTime { source })?;
        let time = Time::from_hms_nano(
            decimal(&digits[8..10]),
            decimal(&digits[10..12]),
            decimal(&digits[12..14]),
            nanos,
        )
        .map_err(|source| GenTimeError::InvalidDateTime { source })?;
        let instant = PrimitiveDateTime::new(date, time).assume_utc();
        Self::from_unix_timestamp(instant.unix_timestamp(), nanos)
    }

    /// Whole seconds since 1970-01-01T00:00:00Z, negative before it (rounded towards the
    /// past: 0.5 s before the epoch is -1 s plus 500 000 000 ns).
    pub fn unix_seconds(&self) -> i64 {
        self.seconds
    }

    /// Nanoseconds after [`unix_seconds`](Self::unix_seconds), below one second.
    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// Milliseconds since 1970-01-01T00:00:00Z, dropping any finer precision (rounded
    /// towards the past).
    pub fn to_unix_millis(&self) -> i64 {
        // Cannot overflow: |seconds| < 2^38.
        self.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(self.nanos / NANOS_PER_MILLI))
    }

    /// The same instant as a [`SystemTime`].
    ///
    /// Fails with [`GenTimeError::OutOfRange`] only on platforms whose `SystemTime` cannot
    /// reach back to year 0000 (Windows starts at 1601); on Linux it always succeeds.
    pub fn to_system_time(&self) -> Result<SystemTime, GenTimeError> {
        let whole = Duration::from_secs(self.seconds.unsigned_abs());
        let base = if self.seconds >= 0 {
            UNIX_EPOCH.checked_add(whole)
        } else {
            UNIX_EPOCH.checked_sub(whole)
        };
        base.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(self.nanos))))
            .ok_or(GenTimeError::OutOfRange)
    }

    /// The compact form `YYYYMMDDHHMMSS[.f]Z` (GeneralizedTime's DER text; a PDF date after
    /// `D:`).
    pub fn compact(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_fields(&mut text, "", "", "");
        text
    }

    /// The same instant as a `time` [`OffsetDateTime`] in UTC.
    pub fn to_offset_date_time(&self) -> OffsetDateTime {
        // The constructors keep the instant within years 0000..=9999, inside the range `time`
        // supports, and `nanos` below one second, so this never falls back; the fallback only
        // spares a panic path.
        OffsetDateTime::from_unix_timestamp(self.seconds)
            .and_then(|t| t.replace_nanosecond(self.nanos))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Number of fraction digits in the canonical form: none for a zero fraction, otherwise
    /// nine less the trailing zeros.
    fn fraction_digits(&self) -> usize {
        if self.nanos == 0 {
            return 0;
        }
        let mut digits = MAX_FRACTION_DIGITS;
        let mut rest = self.nanos;
        while rest.is_multiple_of(10) {
            rest /= 10;
            digits -= 1;
        }
        digits
    }

    /// Writes the canonical fields as `Y{d}M{d}D{t}h{c}m{c}s[.f...]Z`, where `d`, `t` and
    /// `c` are the separators (empty for DER, `-`, `T`, `:` for RFC 3339).
    fn write_fields(
        &self,
        out: &mut impl fmt::Write,
        date_sep: &str,
        time_sep: &str,
        clock_sep: &str,
    ) -> fmt::Result {
        let t = self.to_offset_date_time();
        write!(
            out,
            "{:04}{date_sep}{:02}{date_sep}{:02}{time_sep}{:02}{clock_sep}{:02}{clock_sep}{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        let digits = self.fraction_digits();
        if digits > 0 {
            let all = format!("{:09}", self.nanos);
            out.write_char('.')?;
            out.write_str(all.get(..digits).ok_or(fmt::Error)?)?;
        }
        out.write_char('Z')
    }
}

/// Value of two ASCII digits already checked to be digits.
fn decimal(two: &[u8]) -> u8 {
    two.iter().fold(0u8, |acc, d| {
        acc.wrapping_mul(10).wrapping_add(d.wrapping_sub(b'0'))
    })
}

/// Nanoseconds denoted by the digits after the decimal point.
fn parse_fraction(fraction: &[u8]) -> Result<u32, GenTimeError> {
    if fraction.is_empty() {
        return Err(GenTimeError::EmptyFraction);
    }
    if fraction.len() > MAX_FRACTION_DIGITS {
        return Err(GenTimeError::FractionTooLong {
            digits: fraction.len(),
        });
    }
    let mut nanos = 0u32;
    for (i, d) in fraction.iter().enumerate() {
        if !d.is_ascii_digit() {
            return Err(GenTimeError::InvalidDigit {
                offset: DIGITS_LEN + 1 + i,
            });
        }
        nanos = nanos * 10 + u32::from(d - b'0');
    }
    for _ in fraction.len()..MAX_FRACTION_DIGITS {
        nanos *= 10;
    }
    Ok(nanos)
}

impl fmt::Display for GenTime {
    /// RFC 3339 in UTC with the canonical fraction, e.g. `2025-01-01T12:00:00.123Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_fields(f, "-", "T", ":")
    }
}

impl FixedTag for GenTime {
    const TAG: Tag = Tag::GeneralizedTime;
}

impl<'a> DecodeValue<'a> for GenTime {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        let position = reader.position();
        let len = usize::try_from(header.length)?;
        let mut buf = [0u8; MAX_VALUE_LEN];
        let Some(value) = buf.get_mut(..len) else {
            return Err(Self::TAG.length_error().kind().at(position));
        };
        let value = reader.read_into(value)?;
        Self::from_der_value(value).map_err(|e| der::Error::from(e).kind().at(position))
    }
}

impl EncodeValue for GenTime {
    fn value_len(&self) -> der::Result<Length> {
        let digits = self.fraction_digits();
        let len = DIGITS_LEN + usize::from(digits > 0) + digits + 1;
        Length::try_from(len)
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        let mut text = String::with_capacity(MAX_VALUE_LEN);
        self.write_fields(&mut text, "", "", "")
            .map_err(|fmt::Error| Self::TAG.value_error())?;
        writer.write(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::{Decode, Encode};

    /// Decodes a value through `der`, as a field of a structure would be.
    fn decode(value: &str) -> der::Result<GenTime> {
        let mut tlv = vec![0x18, u8::try_from(value.len()).expect("short test value")];
        tlv.extend_from_slice(value.as_bytes());
        GenTime::from_der(&tlv)
    }

    /// Encodes through `der` and returns the value part as text.
    fn encode(t: GenTime) -> String {
        let der = t.to_der().expect("encodes");
        assert_eq!(der[0], 0x18);
        assert_eq!(usize::from(der[1]), der.len() - 2);
        String::from_utf8(der[2..].to_vec()).expect("ascii")
    }

    #[test]
    fn round_trips_canonical_forms() {
        for (text, nanos) in [
            ("20250101120000Z", 0),
            ("20250101120000.5Z", 500_000_000),
            ("20250101120000.123Z", 123_000_000),
            ("20250101120000.123456789Z", 123_456_789),
            ("20250101120000.000000001Z", 1),
        ] {
            let t = decode(text).expect(text);
            assert_eq!(t.unix_seconds(), 1_735_732_800, "{text}");
            assert_eq!(t.subsec_nanos(), nanos, "{text}");
            assert_eq!(encode(t), text);
        }
    }

    #[test]
    fn encodes_millis_canonically() {
        let t = GenTime::from_unix_millis(1500).expect("in range");
        assert_eq!(encode(t), "19700101000001.5Z");
        assert_eq!(t.to_unix_millis(), 1500);
        let whole = GenTime::from_unix_millis(2000).expect("in range");
        assert_eq!(encode(whole), "19700101000002Z");
    }

    #[test]
    fn full_tlv_bytes() {
        let t = GenTime::from_unix_millis(1_735_732_800_123).expect("in range");
        let mut expected = vec![0x18, 19];
        expected.extend_from_slice(b"20250101120000.123Z");
        assert_eq!(t.to_der().expect("encodes"), expected);
        assert_eq!(GenTime::from_der(&expected).expect("decodes"), t);
    }

    #[test]
    fn decode_tolerates_trailing_zeros_and_encode_drops_them() {
        let t = decode("20250101120000.500Z").expect("tolerated");
        assert_eq!(t.subsec_nanos(), 500_000_000);
        assert_eq!(encode(t), "20250101120000.5Z");
        let zero = decode("20250101120000.0Z").expect("tolerated");
        assert_eq!(encode(zero), "20250101120000Z");
    }

    #[test]
    fn rejects_malformed_values() {
        use GenTimeError as E;
        let cases: &[(&str, GenTimeError)] = &[
            ("2025010112Z", E::InvalidLength { len: 11 }),
            ("20250101120000+0100", E::NotUtc),
            ("20250101120000", E::InvalidLength { len: 14 }),
            ("20250101120000.Z", E::EmptyFraction),
            (
                "20250101120000.1234567890Z",
                E::FractionTooLong { digits: 10 },
            ),
            ("2025010112000aZ", E::InvalidDigit { offset: 13 }),
            ("2025-1-01120000Z", E::InvalidDigit { offset: 4 }),
            ("20250101120000.12a4Z", E::InvalidDigit { offset: 17 }),
            ("20250101120000,5Z", E::InvalidSeparator { offset: 14 }),
            ("20250101120000z", E::NotUtc),
            ("20250101120000.5", E::NotUtc),
            ("20250101120000ZZ", E::InvalidSeparator { offset: 14 }),
        ];
        for (text, expected) in cases {
            assert_eq!(
                GenTime::from_der_value(text.as_bytes()).as_ref(),
                Err(expected),
                "{text}"
            );
            assert!(decode(text).is_err(), "{text}");
        }
    }

    #[test]
    fn rejects_impossible_dates() {
        for text in [
            "20251301120000Z",
            "20250001120000Z",
            "20250100120000Z",
            "20250230120000Z",
            "20250101240000Z",
            "20250101126000Z",
            "20250101120060Z",
        ] {
            assert!(
                matches!(
                    GenTime::from_der_value(text.as_bytes()),
                    Err(GenTimeError::InvalidDateTime { .. })
                ),
                "{text}"
            );
            let err = decode(text).expect_err(text);
            assert_eq!(err.kind(), ErrorKind::DateTime, "{text}");
        }
        assert!(GenTime::from_der_value(b"20240229120000Z").is_ok());
    }

    #[test]
    fn rejects_wrong_tag_and_oversized_length() {
        assert!(GenTime::from_der(b"\x17\x0f20250101120000Z").is_err());
        let mut long = vec![0x18, 30];
        long.extend_from_slice(b"20250101120000.1234567890123Z");
        long.push(b'0');
        assert!(GenTime::from_der(&long).is_err());
    }

    #[test]
    fn range_limits() {
        let min = decode("00000101000000Z").expect("year 0000");
        assert_eq!(min.unix_seconds(), MIN_UNIX_SECONDS);
        let max = decode("99991231235959.999999999Z").expect("year 9999");
        assert_eq!(max.unix_seconds(), MAX_UNIX_SECONDS);
        assert_eq!(encode(min), "00000101000000Z");
        assert_eq!(max.to_string(), "9999-12-31T23:59:59.999999999Z");
        assert_eq!(max.to_offset_date_time().year(), 9999);
        assert_eq!(min.to_offset_date_time().year(), 0);
        assert_eq!(
            GenTime::from_unix_timestamp(MAX_UNIX_SECONDS + 1, 0),
            Err(GenTimeError::OutOfRange)
        );
        assert_eq!(
            GenTime::from_unix_timestamp(MIN_UNIX_SECONDS - 1, 0),
            Err(GenTimeError::OutOfRange)
        );
        assert_eq!(
            GenTime::from_unix_timestamp(0, NANOS_PER_SECOND),
            Err(GenTimeError::OutOfRange)
        );
        assert_eq!(
            GenTime::from_unix_millis(i64::MAX),
            Err(GenTimeError::OutOfRange)
        );
        assert_eq!(
            GenTime::from_unix_millis(i64::MIN),
            Err(GenTimeError::OutOfRange)
        );
    }

    #[test]
    fn before_the_epoch() {
        let t = GenTime::from_unix_millis(-1).expect("in range");
        assert_eq!(t.unix_seconds(), -1);
        assert_eq!(t.subsec_nanos(), 999_000_000);
        assert_eq!(t.to_unix_millis(), -1);
        assert_eq!(encode(t), "19691231235959.999Z");
        let system = t.to_system_time().expect("linux reaches 1969");
        assert_eq!(GenTime::from_system_time(system), Ok(t));
    }

    #[test]
    fn display_is_rfc3339() {
        let t = decode("20250101120000.123Z").expect("valid");
        assert_eq!(t.to_string(), "2025-01-01T12:00:00.123Z");
        let whole = decode("20250101120000Z").expect("valid");
        assert_eq!(whole.to_string(), "2025-01-01T12:00:00Z");
    }

    #[test]
    fn conversions_agree() {
        let t = decode("20250101120000.123456789Z").expect("valid");
        assert_eq!(t.to_unix_millis(), 1_735_732_800_123);
        let odt = t.to_offset_date_time();
        assert_eq!(odt.unix_timestamp(), 1_735_732_800);
        assert_eq!(odt.nanosecond(), 123_456_789);
        let system = t.to_system_time().expect("in range");
        assert_eq!(
            system.duration_since(UNIX_EPOCH).expect("after epoch"),
            Duration::new(1_735_732_800, 123_456_789)
        );
        assert_eq!(GenTime::from_system_time(system), Ok(t));
    }

    #[test]
    fn now_is_whole_millis() {
        let now = GenTime::now_millis().expect("clock within range");
        assert_eq!(now.subsec_nanos() % NANOS_PER_MILLI, 0);
        assert!(now.unix_seconds() > 1_700_000_000);
    }

    #[test]
    fn orders_chronologically() {
        let a = decode("20250101120000Z").expect("valid");
        let b = decode("20250101120000.5Z").expect("valid");
        let c = decode("20250101120001Z").expect("valid");
        assert!(a < b && b < c);
    }

    #[test]
    fn works_as_a_sequence_field() {
        /// A two-field structure standing in for `TSTInfo`.
        #[derive(der::Sequence, Debug, PartialEq, Eq)]
        struct Stamp {
            serial: u32,
            gen_time: GenTime,
        }
        let stamp = Stamp {
            serial: 7,
            gen_time: GenTime::from_unix_millis(1_735_732_800_500).expect("in range"),
        };
        let der = stamp.to_der().expect("encodes");
        let mut expected = vec![0x30, 22, 0x02, 0x01, 0x07, 0x18, 17];
        expected.extend_from_slice(b"20250101120000.5Z");
        assert_eq!(der, expected);
        assert_eq!(Stamp::from_der(&der).expect("decodes"), stamp);
    }
}
