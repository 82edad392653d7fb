//! The case table: every field rule and every boundary of the contract
//! (`shared/spec/click2dial.md`, "Create a call — REST", "Field rules", dialling policy).

use click2dial_core::{
    json, request, DialPolicy, Error, ErrorCode, Field, NumberForm, OutboundId, ValidCall,
    Validators, Warning,
};
use rstest::rstest;

fn validators() -> Validators {
    Validators::new().expect("embedded tables load")
}

/// Parses and validates `body` under `policy`.
fn check_with<'a>(body: &'a [u8], policy: &DialPolicy<'_>) -> Result<ValidCall<'a>, Error> {
    let request = request::parse(body)?;
    validators().validate(&request, policy)
}

fn check(body: &[u8]) -> Result<ValidCall<'_>, Error> {
    check_with(body, &DialPolicy::SOUTH_AFRICA)
}

/// A body with the given raw JSON values (already quoted where strings are meant).
fn body(agent: &str, callee: &str, outbound_id: &str, extra: &str) -> String {
    format!(r#"{{"agent":{agent},"callee":{callee},"outbound_id":{outbound_id}{extra}}}"#)
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

fn callee_body(callee: &str) -> String {
    body(r#""1001""#, callee, r#""27820001234""#, "")
}

fn e164(call: &ValidCall<'_>) -> String {
    let mut buf = [0u8; 16];
    let n = call.callee.write_e164(&mut buf).expect("fits");
    String::from_utf8(buf[..n].to_vec()).expect("ascii")
}

fn error_code(result: Result<ValidCall<'_>, Error>) -> (ErrorCode, Option<Field>) {
    let e = result.expect_err("must be refused");
    (e.code, e.field)
}

#[rstest]
#[case::national_10("0820001234", NumberForm::National, "+27820001234")]
#[case::international_11("27820001234", NumberForm::International, "+27820001234")]
#[case::prefixed_13("0027820001234", NumberForm::InternationalPrefixed, "+27820001234")]
#[case::landline("0215551234", NumberForm::National, "+27215551234")]
#[case::sharecall_0860_is_not_premium("0860001234", NumberForm::National, "+27860001234")]
#[case::maxicall_0861_is_not_premium("0861001234", NumberForm::National, "+27861001234")]
#[case::range_093_is_not_premium("0930001234", NumberForm::National, "+27930001234")]
fn callee_accepted(#[case] callee: &str, #[case] form: NumberForm, #[case] expected: &str) {
    let b = callee_body(&quoted(callee));
    let call = check(b.as_bytes()).expect("accepted");
    assert_eq!(call.callee.form(), form);
    assert_eq!(call.callee.as_str(), callee);
    assert_eq!(e164(&call), expected);
    assert_eq!(call.callee.e164().to_string(), expected);
    assert!(!call.single_leg);
}

#[rstest]
#[case::nine_digits("082000123")]
#[case::eleven_digits_national("08200012345")]
#[case::ten_digits_with_27("2782000123")]
#[case::twelve_digits_with_27("278200012345")]
#[case::twelve_digits_with_00("004420123456")]
#[case::seventeen_digits_with_00("00442012345678901")]
#[case::seventeen_digits_with_00_and_2x_country_code("00263712345678901")]
#[case::twelve_digits_with_00_and_2x_country_code("002637123456")]
#[case::za_with_00_and_ten_nsn_digits("00278200012345")]
#[case::country_code_zero("0000123456789")]
#[case::national_nsn_starting_with_0("0082000123")]
#[case::nsn_starting_with_0_after_27("27020001234")]
#[case::empty("")]
#[case::leading_space(" 0820001234")]
#[case::trailing_space("0820001234 ")]
#[case::inner_spaces("082 000 1234")]
#[case::plus_sign("+27820001234")]
#[case::dashes("082-000-1234")]
#[case::letters("08200O1234")]
#[case::arabic_indic_digits("٠٨٢٠٠٠١٢٣٤")]
#[case::fullwidth_digits("０８２０００１２３４")]
#[case::nul_inside("08200\\u00001234")]
fn callee_refused(#[case] callee: &str) {
    let b = callee_body(&quoted(callee));
    assert_eq!(
        error_code(check(b.as_bytes())),
        (ErrorCode::InvalidCallee, Some(Field::Callee)),
        "{callee:?}"
    );
}

#[rstest]
#[case::thirteen("0044201234567", "+44201234567")]
#[case::fourteen("00442012345678", "+442012345678")]
#[case::fifteen("004420123456789", "+4420123456789")]
#[case::sixteen("0044201234567890", "+44201234567890")]
#[case::one_digit_country_code("0012125550123", "+12125550123")]
#[case::three_digit_country_code("002637123456789", "+2637123456789")]
#[case::thirteen_with_2x_country_code("0026371234567", "+26371234567")]
#[case::sixteen_with_2x_country_code("0026371234567890", "+26371234567890")]
fn foreign_callee_needs_allow_list(#[case] callee: &str, #[case] expected: &str) {
    let b = callee_body(&quoted(callee));
    assert_eq!(
        error_code(check(b.as_bytes())),
        (ErrorCode::CalleeNotAllowed, Some(Field::Callee))
    );
    let policy = DialPolicy {
        allowed_country_codes: &["1", "44", "263"],
        ..DialPolicy::SOUTH_AFRICA
    };
    let call = check_with(b.as_bytes(), &policy).expect("allow-listed");
    assert_eq!(call.callee.form(), NumberForm::Foreign);
    assert_eq!(e164(&call), expected);
}

#[test]
fn allow_list_matches_whole_country_codes_only() {
    // "26" is not a country code prefix of 263 in a way that should allow Zimbabwe.
    let b = callee_body(&quoted("002637123456789"));
    let policy = DialPolicy {
        allowed_country_codes: &["264"],
        ..DialPolicy::SOUTH_AFRICA
    };
    assert_eq!(
        error_code(check_with(b.as_bytes(), &policy)).0,
        ErrorCode::CalleeNotAllowed
    );
}

#[rstest]
#[case::p0862("0862001234")]
#[case::p0869("0869001234")]
#[case::p090("0900001234")]
#[case::p091("0910001234")]
#[case::p092("0920001234")]
#[case::international_form("27862001234")]
#[case::prefixed_form("0027900001234")]
fn premium_rate_refused(#[case] callee: &str) {
    let b = callee_body(&quoted(callee));
    let e = check(b.as_bytes()).expect_err("premium");
    assert_eq!(
        (e.code, e.field),
        (ErrorCode::CalleeNotAllowed, Some(Field::Callee))
    );
    assert_eq!(e.status(), 422);
    assert!(e.message.contains("premium"), "{}", e.message);
    let permissive = DialPolicy {
        refuse_premium_rate: false,
        ..DialPolicy::SOUTH_AFRICA
    };
    check_with(b.as_bytes(), &permissive).expect("allowed when the policy says so");
}

#[test]
fn denied_prefixes_refuse_ranges() {
    let policy = DialPolicy {
        denied_prefixes: &["2787"],
        ..DialPolicy::SOUTH_AFRICA
    };
    let b = callee_body(&quoted("0870001234"));
    assert_eq!(
        error_code(check_with(b.as_bytes(), &policy)).0,
        ErrorCode::CalleeNotAllowed
    );
    let b = callee_body(&quoted("0820001234"));
    check_with(b.as_bytes(), &policy).expect("other ranges pass");
}

#[rstest]
#[case::three_digits(r#""100""#, "100")]
#[case::four_digits(r#""1001""#, "1001")]
#[case::integer(r#"1001"#, "1001")]
#[case::integer_with_spaces(" 1001 ", "1001")]
#[case::integer_three_digits("100", "100")]
fn agent_accepted(#[case] agent: &str, #[case] expected: &str) {
    let b = body(agent, r#""0820001234""#, r#""27820001234""#, "");
    let call = check(b.as_bytes()).expect("accepted");
    assert_eq!(call.agent, expected);
    assert!(!call.single_leg);
}

#[rstest]
#[case::two_digits(r#""10""#, ErrorCode::InvalidAgent)]
#[case::five_digits(r#""10001""#, ErrorCode::InvalidAgent)]
#[case::empty(r#""""#, ErrorCode::InvalidAgent)]
#[case::letters(r#""abc""#, ErrorCode::InvalidAgent)]
#[case::space(r#""10 1""#, ErrorCode::InvalidAgent)]
#[case::arabic_indic(r#""١٠٠١""#, ErrorCode::InvalidAgent)]
#[case::zero("0", ErrorCode::InvalidAgent)]
#[case::negative("-1001", ErrorCode::InvalidAgent)]
#[case::fraction("1001.0", ErrorCode::InvalidAgent)]
#[case::exponent("1e3", ErrorCode::InvalidAgent)]
#[case::boolean("true", ErrorCode::InvalidAgent)]
#[case::array(r#"["1001"]"#, ErrorCode::InvalidAgent)]
#[case::object(r#"{"ext":"1001"}"#, ErrorCode::InvalidAgent)]
#[case::escaped(r#""\u0031001""#, ErrorCode::InvalidAgent)]
#[case::null("null", ErrorCode::MissingField)]
fn agent_refused(#[case] agent: &str, #[case] code: ErrorCode) {
    let b = body(agent, r#""0820001234""#, r#""27820001234""#, "");
    assert_eq!(
        error_code(check(b.as_bytes())),
        (code, Some(Field::Agent)),
        "{agent}"
    );
}

#[test]
fn agent_equal_to_callee_is_a_one_leg_call() {
    for (agent, callee) in [
        (r#""0820001234""#, "0820001234"),
        (r#""27820001234""#, "27820001234"),
        ("27820001234", "27820001234"),
    ] {
        let b = body(agent, &quoted(callee), r#""27820001234""#, "");
        let call = check(b.as_bytes()).expect("one-leg call");
        assert!(call.single_leg);
        assert_eq!(call.agent, callee);
    }
    let b = body(r#""0820001234""#, r#""0820001235""#, r#""27820001234""#, "");
    assert_eq!(error_code(check(b.as_bytes())).0, ErrorCode::InvalidAgent);
    // Equal but invalid: the callee's rule decides.
    let b = body(r#""08200""#, r#""08200""#, r#""27820001234""#, "");
    assert_eq!(error_code(check(b.as_bytes())).0, ErrorCode::InvalidCallee);
}

#[rstest]
#[case::campaign("tvc_spring", None)]
#[case::campaign_charset("tvc_Spring-2026_b", None)]
#[case::campaign_64(&format!("tvc_{}", "a".repeat(64)), None)]
#[case::international("27820001234", None)]
#[case::national("0820001234", Some(Warning::OutboundIdNational))]
fn outbound_id_accepted(#[case] outbound: &str, #[case] warning: Option<Warning>) {
    let b = body(r#""1001""#, r#""0820001234""#, &quoted(outbound), "");
    let call = check(b.as_bytes()).expect("accepted");
    assert_eq!(call.outbound_id.as_str(), outbound);
    assert_eq!(
        call.warnings.contains(Warning::OutboundIdNational),
        warning.is_some()
    );
    match call.outbound_id {
        OutboundId::Campaign { .. } => {
            assert_eq!(call.outbound_id.campaign(), outbound.strip_prefix("tvc_"))
        }
        OutboundId::Number(n) => assert_eq!(n.e164().to_string(), "+27820001234"),
    }
}

#[rstest]
#[case::empty_campaign("tvc_")]
#[case::campaign_65(&format!("tvc_{}", "a".repeat(65)))]
#[case::campaign_space("tvc_a b")]
#[case::campaign_dot("tvc_a.b")]
#[case::upper_prefix("TVC_spring")]
#[case::prefixed_00("0027820001234")]
#[case::nine_digits("082000123")]
#[case::twelve_digits("278200012345")]
#[case::empty("")]
#[case::plus("+27820001234")]
fn outbound_id_refused(#[case] outbound: &str) {
    let b = body(r#""1001""#, r#""0820001234""#, &quoted(outbound), "");
    assert_eq!(
        error_code(check(b.as_bytes())),
        (ErrorCode::InvalidOutboundId, Some(Field::OutboundId)),
        "{outbound:?}"
    );
}

#[rstest]
#[case::callee(r#""1001""#, "820001234", r#""27820001234""#, Field::Callee)]
#[case::outbound_id(r#""1001""#, r#""0820001234""#, "27820001234", Field::OutboundId)]
fn numbers_must_be_strings(
    #[case] agent: &str,
    #[case] callee: &str,
    #[case] outbound: &str,
    #[case] field: Field,
) {
    let b = body(agent, callee, outbound, "");
    let e = check(b.as_bytes()).expect_err("a number");
    assert_eq!(e.field, Some(field));
    assert_eq!(e.status(), 422);
    assert!(e.message.contains("not a number"), "{}", e.message);
    assert!(e.message.contains("leading 0"), "{}", e.message);
}

fn with_ref(extra: &str) -> String {
    body(r#""1001""#, r#""0820001234""#, r#""27820001234""#, extra)
}

#[rstest]
#[case::dot("crm.42")]
#[case::dash("crm-42")]
#[case::underscore("crm_42")]
#[case::tilde("crm~42")]
#[case::colon("crm:42")]
#[case::all_specials("a.b-c_d~e:f")]
#[case::one_char("x")]
#[case::only_specials(".-_~:")]
fn contact_ref_charset_accepted(#[case] reference: &str) {
    let b = with_ref(&format!(r#","contact_ref":"{reference}""#));
    let call = check(b.as_bytes()).expect("accepted");
    assert_eq!(call.contact_ref, Some(reference));
    assert!(call.warnings.is_empty());
}

#[rstest]
#[case::space("crm 42")]
#[case::slash("crm/42")]
#[case::plus("crm+42")]
#[case::at("crm@42")]
#[case::hash("crm#42")]
#[case::percent("crm%2F42")]
#[case::non_ascii("crmé42")]
#[case::escaped_dash(r"crm\u002d42")]
#[case::escaped_quote(r#"crm\"42"#)]
fn contact_ref_charset_refused(#[case] reference: &str) {
    let b = with_ref(&format!(r#","contact_ref":"{reference}""#));
    assert_eq!(
        error_code(check(b.as_bytes())),
        (ErrorCode::InvalidContactRef, Some(Field::ContactRef)),
        "{reference:?}"
    );
}

#[rstest]
#[case::len_229(229, 229, false)]
#[case::len_230(230, 230, false)]
#[case::len_231(231, 230, true)]
#[case::len_1000(1000, 230, true)]
fn contact_ref_truncated_at_230(#[case] len: usize, #[case] kept: usize, #[case] warned: bool) {
    let reference: String = "abc.-_~:9".chars().cycle().take(len).collect();
    for name in ["contact_ref", "call_ref"] {
        let b = with_ref(&format!(r#","{name}":"{reference}""#));
        let call = check(b.as_bytes()).expect("accepted");
        assert_eq!(call.contact_ref, Some(&reference[..kept]));
        assert_eq!(call.warnings.contains(Warning::ContactRefTruncated), warned);
    }
}

#[test]
fn contact_ref_beyond_230_must_still_be_in_the_charset() {
    let reference = format!("{}/", "a".repeat(240));
    let b = with_ref(&format!(r#","contact_ref":"{reference}""#));
    assert_eq!(
        error_code(check(b.as_bytes())).0,
        ErrorCode::InvalidContactRef
    );
}

#[rstest]
#[case::absent("")]
#[case::null(r#","contact_ref":null"#)]
#[case::empty(r#","contact_ref":"""#)]
#[case::empty_legacy(r#","call_ref":"""#)]
#[case::both_empty(r#","contact_ref":"","call_ref":null"#)]
fn missing_contact_ref_is_generated(#[case] extra: &str) {
    let b = with_ref(extra);
    let call = check(b.as_bytes()).expect("accepted");
    assert_eq!(call.contact_ref, None);
    let entropy: [u8; 32] = std::array::from_fn(|i| i as u8);
    let with_refs = call.assign_references(&entropy);
    assert!(with_refs.contact_ref.is_generated());
    assert_eq!(with_refs.contact_ref.as_str().len(), 26);
    assert!(validators().is_contact_ref_charset(with_refs.contact_ref.as_str()));
    assert_ne!(
        with_refs.contact_ref.as_str(),
        with_refs.recording_ref.as_str()
    );
}

#[rstest]
#[case::legacy_only(r#","call_ref":"crm-42""#, Some("crm-42"), Field::CallRef)]
#[case::v3_only(r#","contact_ref":"crm-42""#, Some("crm-42"), Field::ContactRef)]
#[case::both_equal(
    r#","contact_ref":"crm-42","call_ref":"crm-42""#,
    Some("crm-42"),
    Field::ContactRef
)]
#[case::legacy_with_empty_v3(
    r#","contact_ref":"","call_ref":"crm-42""#,
    Some("crm-42"),
    Field::CallRef
)]
fn references_accepted(#[case] extra: &str, #[case] expected: Option<&str>, #[case] field: Field) {
    let b = with_ref(extra);
    let parsed = request::parse(b.as_bytes()).expect("parses");
    assert_eq!(parsed.contact_ref_field, field);
    let call = check(b.as_bytes()).expect("accepted");
    assert_eq!(call.contact_ref, expected);
}

#[test]
fn different_references_are_ambiguous() {
    let b = with_ref(r#","contact_ref":"crm-42","call_ref":"crm-43""#);
    let e = check(b.as_bytes()).expect_err("ambiguous");
    assert_eq!(e.code, ErrorCode::AmbiguousReference);
    assert_eq!(e.status(), 422);
}

#[test]
fn invalid_legacy_reference_names_call_ref() {
    let b = with_ref(r#","call_ref":"crm 42""#);
    assert_eq!(
        error_code(check(b.as_bytes())),
        (ErrorCode::InvalidContactRef, Some(Field::CallRef))
    );
    let b = with_ref(r#","call_ref":42"#);
    assert_eq!(
        error_code(check(b.as_bytes())),
        (ErrorCode::InvalidContactRef, Some(Field::CallRef))
    );
}

#[rstest]
#[case::agent(r#"{"callee":"0820001234","outbound_id":"27820001234"}"#, Field::Agent)]
#[case::callee(r#"{"agent":"1001","outbound_id":"27820001234"}"#, Field::Callee)]
#[case::outbound_id(r#"{"agent":"1001","callee":"0820001234"}"#, Field::OutboundId)]
#[case::callee_null(r#"{"agent":"1001","callee":null,"outbound_id":"1"}"#, Field::Callee)]
#[case::empty_object("{}", Field::Agent)]
fn missing_fields_are_named(#[case] b: &str, #[case] field: Field) {
    let e = check(b.as_bytes()).expect_err("missing");
    assert_eq!((e.code, e.field), (ErrorCode::MissingField, Some(field)));
    assert_eq!(e.status(), 422);
}

#[rstest]
#[case::empty("")]
#[case::whitespace("  \n")]
#[case::open_brace("{")]
#[case::array("[]")]
#[case::string(r#""agent""#)]
#[case::null("null")]
#[case::trailing_comma(r#"{"agent":"1001",}"#)]
#[case::trailing_garbage(r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234"}x"#)]
#[case::two_objects(r#"{}{}"#)]
#[case::unterminated_string(r#"{"agent":"1001"#)]
#[case::missing_colon(r#"{"agent" "1001"}"#)]
#[case::single_quotes(r#"{'agent':'1001'}"#)]
#[case::bare_word(r#"{"agent":1001,"x":tru}"#)]
#[case::two_tokens(r#"{"agent":10 01}"#)]
#[case::leading_zero_number(r#"{"agent":01001}"#)]
#[case::plus_number(r#"{"agent":+1001}"#)]
#[case::deep_nesting(r#"{"x":[[[[[[[[[[[[]]]]]]]]]]]]}"#)]
#[case::duplicate_key(r#"{"callee":"0820001234","callee":"0820001235"}"#)]
#[case::escaped_key(
    r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","agen\u0074":"2002"}"#
)]
fn malformed_json_is_400(#[case] b: &str) {
    let e = check(b.as_bytes()).expect_err("malformed");
    assert_eq!(e.code, ErrorCode::MalformedJson, "{b}");
    assert_eq!(e.status(), 400);
}

#[test]
fn invalid_utf8_is_400() {
    let mut b = callee_body(r#""0820001234""#).into_bytes();
    b.extend_from_slice(b"");
    let at = b.iter().position(|&c| c == b'1').expect("has a 1");
    b[at] = 0xff;
    assert_eq!(
        check(&b).expect_err("bad utf-8").code,
        ErrorCode::MalformedJson
    );
}

#[test]
fn duplicate_key_names_the_field() {
    let b = r#"{"agent":"1001","callee":"0820001234","outbound_id":"27820001234","callee":"0820001235"}"#;
    let e = check(b.as_bytes()).expect_err("duplicate");
    assert_eq!(
        (e.code, e.field),
        (ErrorCode::MalformedJson, Some(Field::Callee))
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let b = with_ref(
        r#","priority":7,"tags":["a",{"b":[1,2.5,-3e2,true,null]}],"note":"x\"y","meta":{}"#,
    );
    let call = check(b.as_bytes()).expect("accepted");
    assert_eq!(call.agent, "1001");
    // Nesting up to the limit is fine in ignored fields.
    let b = with_ref(r#","x":[[[[[[[1]]]]]]]"#);
    check(b.as_bytes()).expect("seven levels");
}

/// `request::parse` keeps the leniency of serde-json-core's deserializer, which read the body
/// before it, so the answers stay the same: inside ignored fields, a scalar is anything up to
/// the next `,`, `}` or `]`, and an array may start with a `,`.
#[rstest]
#[case::lenient_scalars(r#","x":[1x,tru,-,a"b c]"#)]
#[case::leading_comma(r#","x":[,1]"#)]
#[case::leading_comma_then_no_comma(r#","x":[,"a""b"]"#)]
#[case::escaped_quote_and_backslash(r#","x":"a\"b\\","y":["\\\"]"]"#)]
#[case::eight_levels_with_a_scalar_inside(r#","x":[[[[[[[[1]]]]]]]]"#)]
#[case::eight_empty_levels(r#","x":{"a":[{"b":[{"c":[{"d":[]}]}]}]}"#)]
fn ignored_fields_are_skipped_leniently(#[case] extra: &str) {
    check(with_ref(extra).as_bytes()).expect("accepted");
}

#[rstest]
#[case::nine_levels(r#","x":[[[[[[[[[]]]]]]]]]"#)]
#[case::nine_levels_of_objects(r#","x":{"a":[{"b":[{"c":[{"d":[{}]}]}]}]}"#)]
#[case::trailing_comma_in_array(r#","x":[1,]"#)]
#[case::only_a_comma(r#","x":[,]"#)]
#[case::two_leading_commas(r#","x":[,,1]"#)]
#[case::leading_comma_in_object(r#","x":{,"a":1}"#)]
#[case::non_string_key(r#","x":{1:2}"#)]
#[case::key_without_value(r#","x":{"a"}"#)]
#[case::malformed_top_level_scalar(r#","x":1x"#)]
fn malformed_ignored_fields_are_400(#[case] extra: &str) {
    let e = check(with_ref(extra).as_bytes()).expect_err("malformed");
    assert_eq!(e.code, ErrorCode::MalformedJson, "{extra}");
}

#[test]
fn whitespace_everywhere_is_fine() {
    let b = "\r\n{ \"agent\" :\t\"1001\" ,\n \"callee\" : \"0820001234\" , \"outbound_id\" : \"27820001234\" }\n";
    check(b.as_bytes()).expect("accepted");
}

#[test]
fn body_size_limit_is_4_kib() {
    let padding = |total: usize| {
        let base = with_ref(r#","pad":"""#);
        let pad = "x".repeat(total - base.len());
        with_ref(&format!(r#","pad":"{pad}""#))
    };
    let at_limit = padding(request::MAX_BODY_LEN);
    assert_eq!(at_limit.len(), 4096);
    check(at_limit.as_bytes()).expect("4096 bytes are accepted");
    let over = padding(request::MAX_BODY_LEN + 1);
    let e = check(over.as_bytes()).expect_err("too large");
    assert_eq!((e.code, e.status()), (ErrorCode::BodyTooLarge, 413));
}

#[test]
fn field_order_decides_which_error_is_reported() {
    let b = body(r#""1""#, r#""2""#, r#""3""#, r#","contact_ref":"a b""#);
    assert_eq!(error_code(check(b.as_bytes())).0, ErrorCode::InvalidAgent);
    let b = body(r#""1001""#, r#""2""#, r#""3""#, r#","contact_ref":"a b""#);
    assert_eq!(error_code(check(b.as_bytes())).0, ErrorCode::InvalidCallee);
    let b = body(r#""1001""#, r#""0862001234""#, r#""3""#, "");
    assert_eq!(
        error_code(check(b.as_bytes())).0,
        ErrorCode::InvalidOutboundId
    );
}

#[rstest]
#[case::plain(Some("application/json"), true)]
#[case::charset(Some("application/json; charset=utf-8"), true)]
#[case::upper(Some("Application/JSON"), true)]
#[case::spaces(Some(" application/json ;charset=UTF-8"), true)]
#[case::text(Some("text/plain"), false)]
#[case::form(Some("application/x-www-form-urlencoded"), false)]
#[case::json_suffix(Some("application/jsonx"), false)]
#[case::missing(None, false)]
fn content_type(#[case] value: Option<&str>, #[case] ok: bool) {
    let result = request::check_content_type(value.map(str::as_bytes));
    assert_eq!(result.is_ok(), ok);
    if let Err(e) = result {
        assert_eq!((e.code, e.status()), (ErrorCode::UnsupportedMediaType, 415));
    }
}

#[rstest]
#[case::plain("Bearer abc", Some("abc"))]
#[case::lower_and_blanks("bearer  abc ", Some("abc"))]
#[case::upper("BEARER k-1", Some("k-1"))]
#[case::basic("Basic abc", None)]
#[case::no_key("Bearer ", None)]
#[case::blank_key("Bearer   ", None)]
#[case::no_space("Bearer", None)]
#[case::glued("Bearerabc", None)]
#[case::empty("", None)]
fn bearer_token(#[case] value: &str, #[case] key: Option<&str>) {
    assert_eq!(
        request::bearer_token(value.as_bytes()),
        key.map(str::as_bytes)
    );
}

#[test]
fn error_bodies_have_the_contract_shape() {
    let b = callee_body(r#""123""#);
    let e = check(b.as_bytes()).expect_err("invalid");
    let mut buf = [0u8; json::ERROR_BODY_MAX_LEN];
    let n = json::write_error(&e, &mut buf).expect("fits");
    let v: serde_json::Value = serde_json::from_slice(&buf[..n]).expect("valid JSON");
    assert_eq!(v["error"]["code"], "invalid_callee");
    assert_eq!(v["error"]["field"], "callee");
    assert_eq!(v["error"]["message"], e.message);
    let n = json::write_error(&Error::MALFORMED_JSON, &mut buf).expect("fits");
    let v: serde_json::Value = serde_json::from_slice(&buf[..n]).expect("valid JSON");
    assert!(v["error"].get("field").is_none());
}

#[test]
fn every_error_fits_the_error_buffer_and_every_status_is_stable() {
    use ErrorCode::*;
    let expected = [
        (MalformedJson, "malformed_json", 400),
        (BodyTooLarge, "body_too_large", 413),
        (UnsupportedMediaType, "unsupported_media_type", 415),
        (MissingField, "missing_field", 422),
        (InvalidAgent, "invalid_agent", 422),
        (InvalidCallee, "invalid_callee", 422),
        (InvalidOutboundId, "invalid_outbound_id", 422),
        (InvalidContactRef, "invalid_contact_ref", 422),
        (AmbiguousReference, "ambiguous_reference", 422),
        (CalleeNotAllowed, "callee_not_allowed", 422),
        (OutboundIdNotAllowed, "outbound_id_not_allowed", 422),
        (AgentNotAllowed, "agent_not_allowed", 422),
        (UnknownCampaign, "unknown_campaign", 422),
        (UnknownAgent, "unknown_agent", 422),
        (Unauthorized, "unauthorized", 401),
        (ContactRefConflict, "contact_ref_conflict", 409),
        (RateLimited, "rate_limited", 429),
        (PbxUnavailable, "pbx_unavailable", 503),
        (ServiceUnavailable, "service_unavailable", 503),
        (InvalidRecordingRef, "invalid_recording_ref", 400),
        (NotFound, "not_found", 404),
        (RecordingInProgress, "recording_in_progress", 409),
        (RangeNotSatisfiable, "range_not_satisfiable", 416),
        (RequestTimeout, "request_timeout", 408),
        (MethodNotAllowed, "method_not_allowed", 405),
        (Internal, "internal_error", 500),
    ];
    for (code, name, status) in expected {
        assert_eq!((code.as_str(), code.status()), (name, status));
    }
    // The longest message the validators produce fits the documented buffer.
    let b = body(r#""1001""#, r#""0820001234""#, r#""x""#, "");
    let e = check(b.as_bytes()).expect_err("invalid");
    let mut buf = [0u8; json::ERROR_BODY_MAX_LEN];
    json::write_error(&e, &mut buf).expect("fits");
}

#[rstest]
#[case::agent(
    r#""\u0031001""#,
    r#""0820001234""#,
    r#""27820001234""#,
    "",
    Field::Agent
)]
#[case::callee(
    r#""1001""#,
    r#""\u0030820001234""#,
    r#""27820001234""#,
    "",
    Field::Callee
)]
#[case::outbound(r#""1001""#, r#""0820001234""#, r#""tvc_a\nb""#, "", Field::OutboundId)]
#[case::contact_ref(
    r#""1001""#,
    r#""0820001234""#,
    r#""27820001234""#,
    r#","contact_ref":"a\u002db""#,
    Field::ContactRef
)]
#[case::call_ref(
    r#""1001""#,
    r#""0820001234""#,
    r#""27820001234""#,
    r#","call_ref":"a\\b""#,
    Field::CallRef
)]
fn escaped_values_are_refused_with_a_reason(
    #[case] agent: &str,
    #[case] callee: &str,
    #[case] outbound: &str,
    #[case] extra: &str,
    #[case] field: Field,
) {
    let b = body(agent, callee, outbound, extra);
    let e = check(b.as_bytes()).expect_err("escaped");
    assert_eq!(e.field, Some(field));
    assert_eq!(e.status(), 422);
    assert!(e.message.contains("escape"), "{}", e.message);
}

// ---- Dial controls (core::dial): optional, typed, bounded; `null` is the default ----

fn dial_body(extra: &str) -> String {
    body(r#""1001""#, r#""0820001234""#, r#""27820001234""#, extra)
}

#[test]
fn dial_controls_absent_or_null_are_the_defaults() {
    for extra in [
        "",
        r#","agent_ring_timeout_secs":null,"callee_ring_timeout_secs":null,"max_duration_secs":null,"record":null"#,
    ] {
        let b = dial_body(extra);
        let call = check(b.as_bytes()).expect("accepted");
        assert!(call.controls.is_default(), "{b}");
    }
}

#[rstest]
#[case::all(
    r#","agent_ring_timeout_secs":15,"callee_ring_timeout_secs":45,"max_duration_secs":600,"record":false"#,
    Some(15), Some(45), Some(600), false
)]
#[case::lower_bounds(
    r#","agent_ring_timeout_secs":5,"callee_ring_timeout_secs":5,"max_duration_secs":10"#,
    Some(5),
    Some(5),
    Some(10),
    true
)]
#[case::upper_bounds(
    r#","agent_ring_timeout_secs":120,"callee_ring_timeout_secs":120,"max_duration_secs":86400,"record":true"#,
    Some(120), Some(120), Some(86400), true
)]
#[case::whitespace_around_values(
    r#", "max_duration_secs" :  60 , "record" : false "#,
    None,
    None,
    Some(60),
    false
)]
fn dial_controls_accepted(
    #[case] extra: &str,
    #[case] agent_ring: Option<u16>,
    #[case] callee_ring: Option<u16>,
    #[case] max_duration: Option<u32>,
    #[case] record: bool,
) {
    let b = dial_body(extra);
    let c = check(b.as_bytes()).expect("accepted").controls;
    assert_eq!(c.agent_ring_timeout_secs, agent_ring, "{b}");
    assert_eq!(c.callee_ring_timeout_secs, callee_ring, "{b}");
    assert_eq!(c.max_duration_secs, max_duration, "{b}");
    assert_eq!(c.record, record, "{b}");
}

#[rstest]
#[case::agent_ring_below(r#","agent_ring_timeout_secs":4"#, Field::AgentRingTimeout)]
#[case::agent_ring_above(r#","agent_ring_timeout_secs":121"#, Field::AgentRingTimeout)]
#[case::agent_ring_negative(r#","agent_ring_timeout_secs":-5"#, Field::AgentRingTimeout)]
#[case::agent_ring_fraction(r#","agent_ring_timeout_secs":5.5"#, Field::AgentRingTimeout)]
#[case::agent_ring_exponent(r#","agent_ring_timeout_secs":1e1"#, Field::AgentRingTimeout)]
#[case::callee_ring_string(r#","callee_ring_timeout_secs":"30""#, Field::CalleeRingTimeout)]
#[case::callee_ring_bool(r#","callee_ring_timeout_secs":true"#, Field::CalleeRingTimeout)]
#[case::callee_ring_object(r#","callee_ring_timeout_secs":{"s":30}"#, Field::CalleeRingTimeout)]
#[case::max_duration_below(r#","max_duration_secs":9"#, Field::MaxDuration)]
#[case::max_duration_above(r#","max_duration_secs":86401"#, Field::MaxDuration)]
#[case::max_duration_zero(r#","max_duration_secs":0"#, Field::MaxDuration)]
#[case::max_duration_huge(r#","max_duration_secs":99999999999999999999999"#, Field::MaxDuration)]
#[case::record_string(r#","record":"no""#, Field::Record)]
#[case::record_number(r#","record":0"#, Field::Record)]
#[case::record_array(r#","record":[]"#, Field::Record)]
fn dial_controls_refused_with_the_field(#[case] extra: &str, #[case] field: Field) {
    let b = dial_body(extra);
    let e = check(b.as_bytes()).expect_err("refused");
    assert_eq!(
        (e.code, e.field),
        (ErrorCode::InvalidDialControl, Some(field)),
        "{b}"
    );
    assert_eq!(e.status(), 422);
    assert!(e.message.starts_with(field.as_str()), "{}", e.message);
}

#[test]
fn a_dial_control_given_twice_is_malformed() {
    let b = dial_body(r#","record":true,"record":false"#);
    let e = check(b.as_bytes()).expect_err("refused");
    assert_eq!(
        (e.code, e.field),
        (ErrorCode::MalformedJson, Some(Field::Record))
    );
}

#[test]
fn field_rules_come_before_dial_controls_and_dial_controls_before_the_policy() {
    // A bad contact_ref is reported before a bad control...
    let b = dial_body(r#","contact_ref":"a b","max_duration_secs":1"#);
    assert_eq!(
        error_code(check(b.as_bytes())),
        (ErrorCode::InvalidContactRef, Some(Field::ContactRef))
    );
    // ...and a bad control before a callee the policy refuses (premium rate).
    let b = body(
        r#""1001""#,
        r#""0900001234""#,
        r#""27820001234""#,
        r#","max_duration_secs":1"#,
    );
    assert_eq!(
        error_code(check(b.as_bytes())),
        (ErrorCode::InvalidDialControl, Some(Field::MaxDuration))
    );
}
