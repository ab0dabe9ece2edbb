//! PostgreSQL's binary `numeric` (`numeric_send`: ndigits, weight, sign, dscale, then
//! base-10000 digit groups), decoded exactly: to the unscaled integer of DECIMAL(p,s), or to
//! decimal text with exactly s fractional digits for the STRING form. Pure, no I/O.

use std::fmt::Write;

use arrow::datatypes::i256;

use super::decode::Bad;

/// A binary numeric's header, checked: the digit count matches the length, the sign is
/// one PostgreSQL writes.
struct Header<'a> {
    weight: i32,
    sign: u16,
    /// The base-10000 digit groups, two bytes each, big-endian.
    digits: &'a [u8],
}

/// Reads and checks the header; NaN and ±Infinity come back as their sign word.
fn header(v: &[u8]) -> Result<Header<'_>, Bad> {
    let word = |at: usize| {
        v.get(at..at + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or(Bad::Malformed("numeric"))
    };
    let ndigits = word(0)?;
    let weight = word(2)? as i32;
    let sign = word(4)? as u16;
    if !matches!(sign, POSITIVE | NEGATIVE | NAN | INFINITY | NEG_INFINITY) {
        return Err(Bad::Malformed("numeric"));
    }
    if ndigits < 0 || v.len() != 8 + 2 * ndigits as usize {
        return Err(Bad::Malformed("numeric"));
    }
    Ok(Header {
        weight,
        sign,
        digits: &v[8..],
    })
}

impl Header<'_> {
    /// Digit group `i` (0 = the most significant), 0 past either end.
    fn group(&self, i: i64) -> Result<i16, Bad> {
        if i < 0 || i as usize >= self.digits.len() / 2 {
            return Ok(0);
        }
        let at = 2 * i as usize;
        let d = i16::from_be_bytes([self.digits[at], self.digits[at + 1]]);
        if (0..10_000).contains(&d) {
            Ok(d)
        } else {
            Err(Bad::Malformed("numeric"))
        }
    }

    fn ndigits(&self) -> usize {
        self.digits.len() / 2
    }

    /// `NaN`, `Infinity` or `-Infinity` as PostgreSQL writes them, for those values.
    fn special(&self) -> Option<&'static str> {
        match self.sign {
            NAN => Some("NaN"),
            INFINITY => Some("Infinity"),
            NEG_INFINITY => Some("-Infinity"),
            _ => None,
        }
    }
}

const POSITIVE: u16 = 0x0000;
const NEGATIVE: u16 = 0x4000;
const NAN: u16 = 0xC000;
const INFINITY: u16 = 0xD000;
const NEG_INFINITY: u16 = 0xF000;

/// Decodes a binary numeric (ndigits, weight, sign, dscale, base-10000 digits) to its unscaled
/// integer at `scale`, exactly; fails when it is NaN/±Infinity, has more fractional digits
/// than `scale`, or reaches `limit` (10^precision) in magnitude.
pub fn unscaled(v: &[u8], scale: i8, limit: i256) -> Result<i256, Bad> {
    let h = header(v)?;
    if let Some(special) = h.special() {
        return Err(Bad::NumericSpecial(special));
    }
    let weight = h.weight;
    // unscaled = Σ dᵢ × 10^eᵢ with eᵢ = 4 × (weight − i) + scale. Horner's rule over the groups
    // at or above the scale, each step in units of 10^eᵢ, so no intermediate exceeds the
    // unscaled value itself: digits below the scale must be zeros (else the value has more
    // fractional digits than the column) and are never multiplied in.
    let pow10 = |n: i32| i256::from_i128(10).checked_pow(n as u32).ok_or(Bad::NumericRange);
    let mut acc = i256::ZERO;
    let mut unit: Option<i32> = None;
    for i in 0..h.ndigits() {
        let d = h.group(i as i64)?;
        let e = 4 * (weight - i as i32) + scale as i32;
        let (d, e) = if e >= 0 {
            (d, e)
        } else if e > -4 {
            let below = 10i16.pow((-e) as u32);
            if d % below != 0 {
                return Err(Bad::NumericRange);
            }
            (d / below, 0)
        } else if d != 0 {
            return Err(Bad::NumericRange);
        } else {
            continue;
        };
        let shifted = match unit {
            None => Some(i256::ZERO),
            Some(prev) => acc.checked_mul(pow10(prev - e)?),
        };
        acc = shifted
            .and_then(|a| a.checked_add(i256::from_i128(d as i128)))
            .ok_or(Bad::NumericRange)?;
        unit = Some(e);
    }
    if let Some(e) = unit.filter(|&e| e > 0) {
        acc = acc.checked_mul(pow10(e)?).ok_or(Bad::NumericRange)?;
    }
    if acc >= limit {
        return Err(Bad::NumericRange);
    }
    Ok(if h.sign == NEGATIVE { acc.wrapping_neg() } else { acc })
}

/// Writes a binary numeric of a `numeric(precision, scale)` column into `out` as decimal text
/// with exactly `scale` fractional digits (`-12.50` at scale 2), as PostgreSQL prints it;
/// `NaN`, `Infinity` and `-Infinity` as PostgreSQL writes them. Fails when the value has
/// nonzero digits beyond the scale or more integer digits than `precision - scale`.
pub fn text(v: &[u8], precision: u8, scale: i8, out: &mut String) -> Result<(), Bad> {
    out.clear();
    let h = header(v)?;
    if let Some(special) = h.special() {
        out.push_str(special);
        return Ok(());
    }
    let scale = scale.max(0) as usize;
    let int_digits = precision as usize - scale.min(precision as usize);
    // integer groups: positions weight..=0 (group index weight − position); at most what the
    // precision allows, so a malformed weight cannot make the loop long
    if h.weight >= 0 && (h.weight as usize) * 4 > int_digits + 3 {
        return Err(Bad::NumericRange);
    }
    let weight = i64::from(h.weight);
    if h.sign == NEGATIVE && h.digits.iter().any(|&b| b != 0) {
        out.push('-');
    }
    let sign_len = out.len();
    for position in (0..=weight).rev() {
        let d = h.group(weight - position)?;
        if out.len() == sign_len {
            if d != 0 {
                write!(out, "{d}").expect("writing to a String");
            }
        } else {
            push4(out, d);
        }
    }
    if out.len() - sign_len > int_digits {
        return Err(Bad::NumericRange);
    }
    if out.len() == sign_len {
        out.push('0');
    }
    // fractional groups: positions −1, −2, … (group index weight + k); digits past the scale,
    // in the last group written and in any group after it, must be zero
    if scale > 0 {
        out.push('.');
    }
    let frac_start = out.len();
    let groups = scale.div_ceil(4) as i64;
    for k in 1..=groups {
        push4(out, h.group(weight + k)?);
    }
    if out[frac_start + scale..].bytes().any(|b| b != b'0') {
        return Err(Bad::NumericRange);
    }
    out.truncate(frac_start + scale);
    let last_written = weight + groups;
    if (last_written + 1..h.ndigits() as i64).any(|i| h.group(i).is_ok_and(|d| d != 0)) {
        return Err(Bad::NumericRange);
    }
    Ok(())
}

/// Appends a digit group as four digits.
fn push4(out: &mut String, d: i16) {
    let d = d as u16;
    for div in [1000, 100, 10, 1] {
        out.push(char::from(b'0' + (d / div % 10) as u8));
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Array;

    use super::super::decode::Column;
    use super::super::types::ColumnType;
    use super::*;

    /// Binary numeric from its parts.
    fn num(weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend((digits.len() as i16).to_be_bytes());
        v.extend(weight.to_be_bytes());
        v.extend(sign.to_be_bytes());
        v.extend(dscale.to_be_bytes());
        for d in digits {
            v.extend(d.to_be_bytes());
        }
        v
    }

    fn p(n: u32) -> i256 {
        i256::from_i128(10).wrapping_pow(n)
    }

    #[test]
    fn numeric_decodes_exactly() {
        let cases: &[(Vec<u8>, i8, Result<&str, Bad>)] = &[
            (num(0, 0, 0, &[]), 2, Ok("0")),
            (num(0, 0, 2, &[12]), 2, Ok("1200")),                     // 12.00
            (num(0, 0x4000, 2, &[1, 5000]), 2, Ok("-150")),           // -1.50
            (num(-1, 0, 2, &[5000]), 2, Ok("50")),                    // 0.50
            (num(-1, 0, 6, &[12, 3400]), 6, Ok("1234")),              // 0.00123400 at scale 6
            (num(-2, 0, 8, &[12, 3400]), 6, Err(Bad::NumericRange)),  // 0.000000123400
            (num(2, 0, 0, &[1]), 0, Ok("100000000")),                 // 1e8
            (num(1, 0, 2, &[9999, 9999, 9900]), 2, Ok("9999999999")), // 99999999.99
            (num(0, 0, 3, &[1, 1]), 2, Err(Bad::NumericRange)),       // 1.0001 at scale 2
            (num(0, 0xC000, 0, &[]), 2, Err(Bad::NumericSpecial("NaN"))),
            (num(0, 0xF000, 0, &[]), 2, Err(Bad::NumericSpecial("-Infinity"))),
            (num(3, 0, 0, &[1]), 0, Err(Bad::NumericRange)), // 1e12 ≥ 10^12
            (vec![0, 1, 0], 2, Err(Bad::Malformed("numeric"))),
        ];
        for (bytes, scale, want) in cases {
            let got = unscaled(bytes, *scale, p(12)).map(|v| v.to_string());
            assert_eq!(got.as_deref().map_err(|e| *e), want.clone(), "{bytes:?} at scale {scale}");
        }
        // 38 nines at scale 10 fits Decimal128(38,10); 50 digits need i256.
        let nines: Vec<i16> = std::iter::repeat_n(9999, 9).chain([9900]).collect();
        let v = unscaled(&num(6, 0, 10, &nines), 10, p(38)).unwrap();
        assert_eq!(v.to_string(), "9".repeat(38));
        let big: Vec<i16> = std::iter::repeat_n(1234, 13).collect();
        let v = unscaled(&num(11, 0x4000, 5, &big), 5, p(76)).unwrap();
        assert_eq!(v.to_string(), format!("-{}0", "1234".repeat(13)));
    }

    /// Binary numeric of a decimal literal as PostgreSQL's `numeric_send` writes it: base-10000
    /// groups aligned at the decimal point, leading and trailing zero groups stripped, dscale
    /// the literal's fractional digits.
    fn pg_num(text: &str) -> Vec<u8> {
        let (neg, t) = text.strip_prefix('-').map_or((false, text), |t| (true, t));
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        let int = format!("{}{int}", "0".repeat((4 - int.len() % 4) % 4));
        let frac = format!("{frac}{}", "0".repeat((4 - frac.len() % 4) % 4));
        let all = format!("{int}{frac}");
        let mut groups: Vec<i16> = all
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
            .collect();
        let mut weight = (int.len() / 4) as i16 - 1;
        while groups.first() == Some(&0) {
            groups.remove(0);
            weight -= 1;
        }
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if groups.is_empty() {
            weight = 0;
        }
        let dscale = t.split_once('.').map_or(0, |(_, f)| f.len()) as i16;
        num(weight, if neg && !groups.is_empty() { 0x4000 } else { 0 }, dscale, &groups)
    }

    /// `numeric(p,s)` at precision 38 (Decimal128), 39 and 76 (Decimal256) and scales 0..=4
    /// (every scale mod 4) and beyond: the extremes, the smallest step, groups that straddle
    /// the point, and what does not fit (one digit too many on either side).
    #[test]
    fn numeric_at_every_precision_and_scale_mod_4() {
        for precision in [38u8, 39, 76] {
            for scale in [0i8, 1, 2, 3, 4, 5, 6, 7, 8, 10, 13, 37, precision as i8 - 1, precision as i8] {
                let (ip, fp) = (precision as usize - scale as usize, scale as usize);
                let lit = |int: &str, frac: &str| if frac.is_empty() { int.to_owned() } else { format!("{int}.{frac}") };
                let int = |digits: String| if digits.is_empty() { "0".to_owned() } else { digits };
                let nines = lit(&int("9".repeat(ip)), &"9".repeat(fp));
                let tiny = lit("0", &format!("{}1", "0".repeat(fp.saturating_sub(1))));
                let straddle = lit(
                    &int("1234567".chars().cycle().take(ip.min(9)).collect()),
                    &"891".repeat(3)[..fp.min(9)],
                );
                let straddle_want = format!("{}{}", &straddle.replace('.', ""), "0".repeat(fp - fp.min(9)));
                let straddle_want = straddle_want.trim_start_matches('0').to_owned();
                let ok: Vec<(String, String)> = vec![
                    (nines.clone(), "9".repeat(precision as usize)),
                    (format!("-{nines}"), format!("-{}", "9".repeat(precision as usize))),
                    (if fp == 0 { "1".into() } else { tiny.clone() }, "1".into()),
                    (if fp == 0 { "-1".into() } else { format!("-{tiny}") }, "-1".into()),
                    (straddle.clone(), straddle_want.clone()),
                    (format!("-{straddle}"), format!("-{straddle_want}")),
                    ("0".into(), "0".into()),
                ];
                let too_wide = lit(&format!("1{}", "0".repeat(ip)), &"0".repeat(fp));
                let too_long = lit(if ip == 0 { "0" } else { "1" }, &format!("{}1", "0".repeat(fp)));
                let bad: Vec<String> = vec![
                    format!("9{nines}"),
                    format!("-9{nines}"),
                    too_wide.clone(),
                    format!("-{too_wide}"),
                    too_long.clone(),
                    format!("-{too_long}"),
                    format!("{nines}9"),
                ];
                let kind = ColumnType::Decimal { precision, scale };
                for (text, want) in &ok {
                    let mut c = Column::new(&kind);
                    c.append(&pg_num(text))
                        .unwrap_or_else(|e| panic!("numeric({precision},{scale}) {text}: {e:?}"));
                    let a = c.finish();
                    let got = match precision {
                        ..=38 => a
                            .as_any()
                            .downcast_ref::<arrow::array::Decimal128Array>()
                            .unwrap()
                            .value(0)
                            .to_string(),
                        _ => a
                            .as_any()
                            .downcast_ref::<arrow::array::Decimal256Array>()
                            .unwrap()
                            .value(0)
                            .to_string(),
                    };
                    assert_eq!(&got, want, "numeric({precision},{scale}) {text}");
                }
                for text in &bad {
                    let mut c = Column::new(&kind);
                    assert_eq!(
                        c.append(&pg_num(text)),
                        Err(Bad::NumericRange),
                        "numeric({precision},{scale}) {text}"
                    );
                    let mut out = String::new();
                    assert_eq!(
                        super::text(&pg_num(text), precision, scale, &mut out),
                        Err(Bad::NumericRange),
                        "numeric({precision},{scale}) {text} as text"
                    );
                }
                // the STRING form: the literal with exactly `scale` fractional digits
                for (text, _) in &ok {
                    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
                    let want = lit(int, &format!("{frac:0<fp$}"));
                    let mut c = Column::new(&ColumnType::DecimalText { precision, scale });
                    c.append(&pg_num(text))
                        .unwrap_or_else(|e| panic!("numeric({precision},{scale}) {text} as text: {e:?}"));
                    let a = c.finish();
                    let got = a.as_any().downcast_ref::<arrow::array::StringArray>().unwrap().value(0).to_owned();
                    assert_eq!(got, want, "numeric({precision},{scale}) {text} as text");
                }
            }
        }
        // The value: 65 + 10 digits in numeric(76,10); its 20 groups are 80 digits.
        let text = format!("{}.{}", "9".repeat(65), "9".repeat(10));
        let v = unscaled(&pg_num(&text), 10, p(76)).unwrap();
        assert_eq!(v.to_string(), "9".repeat(75));
        let mut out = String::new();
        super::text(&pg_num(&text), 76, 10, &mut out).unwrap();
        assert_eq!(out, text);
        for (sign, want) in [(NAN, "NaN"), (INFINITY, "Infinity"), (NEG_INFINITY, "-Infinity")] {
            super::text(&num(0, sign, 0, &[]), 50, 5, &mut out).unwrap();
            assert_eq!(out, want);
        }
        // −0.00 (a negative sign on zero digits) prints as PostgreSQL does: 0.00
        super::text(&num(0, NEGATIVE, 2, &[]), 50, 2, &mut out).unwrap();
        assert_eq!(out, "0.00");
        // a weight far beyond the precision is refused before any digit is written
        assert_eq!(super::text(&num(i16::MAX, 0, 0, &[1]), 50, 2, &mut out), Err(Bad::NumericRange));
        assert_eq!(
            Bad::NumericRange.explain("price"),
            (
                "numeric value does not fit the column's precision and scale".to_owned(),
                "cast it in spec.query, e.g. price::text".to_owned()
            )
        );
    }
}
