// Fuzzes KeySource (cpp/include/ringlb/key_source.hpp): a key source built
// from an arbitrary spec, applied to an arbitrary request.
//
// Input, line-oriented so that seeds are readable:
//   <spec>\n<client ip>\n<raw HTTP request header...>
// The request goes through Beast's parser into the router's own message type
// (fields in a FieldArena), exactly what ProxySession::do_route hands to
// request_id(); the raw bytes after the second line are also used, unparsed,
// as a request-target with http::fields, since KeySource takes any string_view.
//
// A spec KeySource rejects (std::invalid_argument) is an expected outcome.
// Findings: any crash or sanitizer report, and a broken promise of the header:
// request_id() is the key's id when there is a key and a 6-digit random id
// otherwise, the same key always gives the same id, a decimal key is its own
// id, and query:NAME agrees with Boost.URL (the fast path claims to).
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>

#include "ringlb/field_arena.hpp"
#include "ringlb/hash_schemes.hpp"
#include "ringlb/key_source.hpp"

namespace {

namespace http = boost::beast::http;
using ringlb::KeySource;

[[noreturn]] void finding(const char* what, std::string_view detail) {
    std::fprintf(stderr, "fuzz_key_source: %s: '%.*s'\n", what, static_cast<int>(detail.size()),
                 detail.data());
    std::abort();
}

// Splits off the text up to the next '\n' (all of it when there is none).
std::string_view next_line(std::string_view& rest) {
    const auto nl = rest.find('\n');
    const auto line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    return line;
}

// What Boost.URL makes of the query of `target` for parameter `name`: the
// router's slow path, and the reference its fast path must agree with.
std::optional<std::string> boost_url_query_value(std::string_view target, std::string_view name) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return std::nullopt;
    auto query = target.substr(q + 1);
    query = query.substr(0, query.find('#'));
    const auto parsed = boost::urls::parse_relative_ref(target.substr(q, query.size() + 1));
    if (!parsed) return std::nullopt;
    const auto params = parsed->encoded_params();
    const auto it = params.find(boost::urls::pct_string_view(name));
    if (it == params.end() || !(*it).has_value) return std::nullopt;
    return (*it).value.decode();
}

bool is_decimal_u64(std::string_view s, std::uint64_t& value) {
    if (s.empty() || s.size() > 19) return false;  // 19 digits always fit in 64 bits
    value = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return true;
}

template <class Fields>
void check(const KeySource& source, const Fields& fields, std::string_view target,
           std::string_view client_ip) {
    std::string scratch;
    const auto key = source.key(fields, target, client_ip, scratch);
    std::optional<std::string> key_copy;
    if (key) key_copy.emplace(*key);  // read the whole view: ASan checks where it points

    // Two different random streams: only a request without a key may differ.
    std::mt19937_64 rng_a(1), rng_b(2);
    std::string scratch_a, scratch_b;
    const auto id_a = source.request_id(fields, target, client_ip, rng_a, scratch_a);
    const auto id_b = source.request_id(fields, target, client_ip, rng_b, scratch_b);
    if (key_copy) {
        if (id_a != id_b) finding("the same key gave two request ids", *key_copy);
        if (id_a != ringlb::key_to_request_id(*key_copy)) finding("id is not the key's id", *key_copy);
        std::uint64_t decimal = 0;
        if (is_decimal_u64(*key_copy, decimal) && id_a != decimal) {
            finding("a decimal key is not its own id", *key_copy);
        }
    } else if (id_a < 100000 || id_a > 999999 || id_b < 100000 || id_b > 999999) {
        finding("a keyless request got an id outside 100000..999999", target);
    }

    switch (source.kind()) {
        case KeySource::Kind::path:
            if (key_copy != std::string(KeySource::path_of(target))) finding("path key", target);
            break;
        case KeySource::Kind::client_ip:
            if (key_copy != std::string(client_ip)) finding("client-ip key", client_ip);
            break;
        case KeySource::Kind::query:
            if (key_copy != boost_url_query_value(target, source.name())) {
                finding("query key differs from Boost.URL's", target);
            }
            break;
        default:
            break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view rest(reinterpret_cast<const char*>(data), size);
    const std::string spec(next_line(rest));
    const std::string client_ip(next_line(rest));
    std::optional<KeySource> source;
    try {
        source.emplace(spec);
    } catch (const std::invalid_argument&) {
        return 0;  // an invalid spec: the router refuses to start, as it should
    }
    if (KeySource(source->spec()).spec() != source->spec()) finding("spec() does not round-trip", spec);

    // Unparsed bytes as a target: no fields, any bytes.
    check(*source, http::fields{}, rest, client_ip);

    // The router's path: Beast's parser into an arena-backed request, with
    // the router's default header limit (RouterConfig::max_header_bytes).
    ringlb::FieldArena arena;
    ringlb::ArenaRequest req(std::piecewise_construct, std::make_tuple(),
                             std::make_tuple(ringlb::FieldAllocator<char>(&arena)));
    http::request_parser<http::string_body, ringlb::FieldAllocator<char>> parser(std::move(req));
    parser.header_limit(8 * 1024);
    parser.eager(false);
    boost::beast::error_code ec;
    parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
    if (!ec && parser.is_header_done()) {
        const auto& header = parser.get();
        check<ringlb::ArenaFields>(*source, header, header.target(), client_ip);
    }
    return 0;
}
