//! The `Range` header of recordings (`core::range`): every rule and boundary, and that a
//! served part always lies inside the file.

use click2dial_core::range::{ask, RangeAsk};
use proptest::prelude::*;
use rstest::rstest;
use RangeAsk::{Part, Unsatisfiable, Whole};

#[rstest]
#[case("bytes=0-43", Part(0, 43))]
#[case("bytes=0-", Part(0, 99))]
#[case("bytes=90-200", Part(90, 99))]
#[case("bytes=99-99", Part(99, 99))]
#[case("bytes=-10", Part(90, 99))]
#[case("bytes=-1000", Part(0, 99))]
#[case("BYTES = 5-5", Part(5, 5))]
#[case(" bytes=0-0 ", Part(0, 0))]
#[case("bytes=0-18446744073709551615", Part(0, 99))]
#[case("bytes=100-", Unsatisfiable)]
#[case("bytes=100-200", Unsatisfiable)]
#[case("bytes=-0", Unsatisfiable)]
#[case("items=0-1", Whole)]
#[case("bytes=0-1,5-6", Whole)]
#[case("bytes=5-1", Whole)]
#[case("bytes=a-b", Whole)]
#[case("bytes=+1-2", Whole)]
#[case("bytes=0x1-2", Whole)]
#[case("bytes=18446744073709551616-", Whole)]
#[case("bytes", Whole)]
#[case("bytes=", Whole)]
#[case("bytes=-", Whole)]
#[case("", Whole)]
#[case("bytes=--1", Whole)]
#[case("bytes=١-٢", Whole)]
fn a_file_of_100_bytes(#[case] value: &str, #[case] want: RangeAsk) {
    assert_eq!(ask(Some(value.as_bytes()), 100), want, "{value}");
}

#[rstest]
#[case("bytes=0-", Unsatisfiable)]
#[case("bytes=0-5", Unsatisfiable)]
#[case("bytes=-5", Unsatisfiable)]
#[case("bytes=-0", Unsatisfiable)]
#[case("bytes=5-1", Whole)]
#[case("bytes=a-", Whole)]
#[case("items=0-1", Whole)]
fn an_empty_file(#[case] value: &str, #[case] want: RangeAsk) {
    assert_eq!(ask(Some(value.as_bytes()), 0), want, "{value}");
}

#[test]
fn no_header_or_not_utf8_is_the_whole_file() {
    assert_eq!(ask(None, 100), Whole);
    assert_eq!(ask(Some(b"bytes=0-1\xff"), 100), Whole);
}

proptest! {
    #[test]
    fn a_part_lies_inside_the_file(value in "[ bBytesi=,0-9+-]{0,24}", len in 0u64..200) {
        if let Part(start, end) = ask(Some(value.as_bytes()), len) {
            prop_assert!(start <= end && end < len, "{value} of {len}: {start}-{end}");
        }
    }
}
