//! Feeds arbitrary bytes to the query parser and the error-reply builder:
//! neither may panic, whatever arrives on port 53.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(q) = portico_dns::wire::parse_query(data) {
        let _ = portico_dns::wire::encode(&q, &portico_dns::wire::Response::default(), 512);
    }
    let _ = portico_dns::wire::error_reply(data, portico_dns::wire::rcode::FORMERR);
    let _ = portico_dns::wire::response_ttl(data);
    let _ = portico_dns::wire::parse_answers(data);
});
