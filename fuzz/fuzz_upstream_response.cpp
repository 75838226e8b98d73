// Fuzzes the router's reading of a replica's answer and what it makes of it
// for the client: ProxySession from do_upstream_read to on_upstream_response,
// without sockets.
//
// Input: a flags byte, a cut byte, then what the replica sends before it
// closes the connection. Flags (low bits; the digits '0'..'7' spell them):
//   bit 0: the request was HEAD (the parser skips the body)
//   bit 1: the client spoke HTTP/1.0
//   bit 2: the client asked to close
// The answer arrives as two reads, cut at cut * size / 255, then EOF.
//
// As the router does it: the router's parser (MessageParser) on an
// arena-backed message, eager, header limit 64 KiB, body limit 64 MiB
// (inputs are capped far below that instead), HEAD skips the body; parsing
// over the connection's buffer, put_eof when the replica closes; a status
// outside 100..599 fails the try; interim 1xx answers (not 101) skipped; then 404 becomes the SPEC's 400, hop-by-hop
// fields go, a body that came chunked or up to the close gets its length,
// the version and Connection are the client's, and WireFormat lays it out.
//
// Findings besides crashes and sanitizer reports: the client must parse what
// the router sends as exactly one answer (nothing left over: no response
// splitting), with the replica's status and body, no hop-by-hop field, and
// no field the replica did not send in its header but X-Ringlb-Replica,
// Content-Length and Connection.
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "ringlb/field_arena.hpp"
#include "ringlb/message_parser.hpp"
#include "ringlb/proxy_rules.hpp"
#include "ringlb/wire_format.hpp"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using ringlb::ArenaFields;
using ringlb::ProxyRules;

// As in proxy_session.cpp.
constexpr std::uint64_t max_upstream_body = 64ull << 20;
constexpr std::uint32_t max_upstream_header = 64u << 10;
constexpr std::size_t upstream_read_size = 16384;
// Far below max_upstream_body: the body limit is not what is fuzzed here.
constexpr std::size_t max_input = 1u << 20;
constexpr int max_interim = 64;

[[noreturn]] void finding(const std::string& what, std::string_view sent) {
    std::fprintf(stderr, "fuzz_upstream_response: %s\n--- sent to the client ---\n%.*s\n---\n",
                 what.c_str(), static_cast<int>(sent.size()), sent.data());
    std::abort();
}

// The replica's side of the connection: its bytes in two parts, then EOF.
class Replica {
public:
    Replica(std::string_view first, std::string_view second) : parts_{first, second} {}

    // One read of at most upstream_read_size bytes into `buffer`; false at EOF.
    bool read(beast::flat_buffer& buffer) {
        const std::size_t n = read_some(buffer);
        delivered_ += n;
        return n > 0;
    }
    // Bytes read so far.
    std::size_t delivered() const noexcept { return delivered_; }

private:
    std::size_t read_some(beast::flat_buffer& buffer) {
        while (next_ < parts_.size() && parts_[next_].empty()) ++next_;
        if (next_ == parts_.size()) return 0;
        auto& part = parts_[next_];
        const std::size_t n = std::min(part.size(), upstream_read_size);
        buffer.commit(boost::asio::buffer_copy(buffer.prepare(n), boost::asio::buffer(part.data(), n)));
        part.remove_prefix(n);
        return n;
    }

    std::array<std::string_view, 2> parts_;
    std::size_t next_ = 0;
    std::size_t delivered_ = 0;
};

// ProxySession::parse_upstream and on_upstream_bytes: true with a complete
// answer, false when the router would count the try as failed.
bool read_answer(ringlb::ResponseParser& parser, beast::flat_buffer& buffer, Replica& replica) {
    for (;;) {
        while (buffer.size() > 0) {
            beast::error_code ec;
            const std::size_t n = parser.put(buffer.data(), ec);
            buffer.consume(n);
            if (ec == http::error::need_more) break;
            if (ec) return false;
            if (parser.is_done()) return true;
            if (n == 0) break;
        }
        if (!replica.read(buffer)) {
            // The replica closed: that completes an answer delimited by the
            // end of the connection, and cuts any other short.
            if (!parser.got_some()) return false;
            beast::error_code ec;
            parser.put_eof(ec);
            return !ec && parser.is_done();
        }
    }
}

// The fields of the replica's header as it sent them (name, value), read by
// Beast's own parser, which stops at the end of the header.
std::multiset<std::pair<std::string, std::string>> header_fields(std::string_view wire, bool head) {
    http::response_parser<http::string_body> p;
    p.header_limit(max_upstream_header);
    if (head) p.skip(true);
    beast::error_code ec;
    p.put(boost::asio::buffer(wire.data(), wire.size()), ec);
    std::multiset<std::pair<std::string, std::string>> out;
    for (const auto& f : p.get()) out.emplace(std::string(f.name_string()), std::string(f.value()));
    return out;
}

// What the client makes of `sent`, the answer to its request.
void check_sent(const std::string& sent, bool head, unsigned status, const std::string& body,
                const std::multiset<std::pair<std::string, std::string>>& from_replica) {
    http::response_parser<http::string_body> client;
    client.header_limit(UINT32_MAX);
    client.body_limit(UINT64_MAX);
    client.eager(true);
    if (head) client.skip(true);
    std::string_view rest = sent;
    while (!rest.empty() && !client.is_done()) {
        beast::error_code ec;
        const std::size_t n = client.put(boost::asio::buffer(rest.data(), rest.size()), ec);
        rest.remove_prefix(n);
        if (ec) finding("the client cannot parse the answer: " + ec.message(), sent);
        if (n == 0) break;
    }
    if (!client.is_done()) finding("the answer is incomplete (the client would wait)", sent);
    if (!rest.empty()) finding("bytes after the answer (a second answer)", sent);
    const auto& got = client.get();
    if (got.result_int() != status) finding("the client reads another status", sent);
    if (!head && got.body() != body) finding("the client reads another body", sent);
    // RFC 9110 §8.6: one Content-Length, a plain decimal ("3, 3" is invalid;
    // a proxy may reject it or send the single value, not forward it).
    const auto lengths = got.count(http::field::content_length);
    const auto length = got[http::field::content_length];
    if (lengths > 1 || (lengths == 1 && (length.empty() ||
                                         length.find_first_not_of("0123456789") != length.npos))) {
        finding("the answer's Content-Length is not one plain decimal", sent);
    }
    for (const auto& f : got) {
        const auto name = f.name();
        // The router's own Connection says only whether this connection stays.
        if (name == http::field::connection) {
            if (!beast::iequals(f.value(), "close") && !beast::iequals(f.value(), "keep-alive")) {
                finding("a Connection field the router did not write", sent);
            }
            continue;
        }
        if (name == http::field::content_length || beast::iequals(f.name_string(), "X-Ringlb-Replica")) {
            continue;
        }
        // The rest of ProxyRules::scan's list concerns one hop only.
        http::fields one;
        one.insert(name, f.name_string(), f.value());
        if (ProxyRules::scan<http::fields>(one).hop_by_hop) {
            finding("a hop-by-hop field reaches the client: " + std::string(f.name_string()), sent);
        }
        if (!from_replica.count({std::string(f.name_string()), std::string(f.value())})) {
            finding("a field the replica's header did not hold: " + std::string(f.name_string()), sent);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2 || size > max_input) return 0;
    const bool head = data[0] & 1;
    const unsigned client_version = (data[0] & 2) ? 10 : 11;
    const bool client_keep_alive = !(data[0] & 4);
    const std::string_view wire(reinterpret_cast<const char*>(data + 2), size - 2);
    const std::size_t cut = static_cast<std::size_t>(data[1]) * wire.size() / 255;
    Replica replica(wire.substr(0, cut), wire.substr(cut));

    ringlb::FieldArena arena;
    beast::flat_buffer buffer;
    ringlb::ArenaResponse res(std::piecewise_construct, std::make_tuple(),
                              std::make_tuple(ringlb::FieldAllocator<char>(&arena)));
    std::optional<ringlb::ResponseParser> parser;
    std::size_t answer_start = 0;  // where the final answer begins in `wire`
    for (int interim = 0;; ++interim) {
        if (interim == max_interim) return 0;
        // ProxySession::do_upstream_read.
        res.body().clear();
        parser.emplace(std::move(res));
        parser->eager(true);
        parser->header_limit(max_upstream_header);
        parser->body_limit(max_upstream_body);
        if (head) parser->skip(true);
        answer_start = replica.delivered() - buffer.size();
        if (!read_answer(*parser, buffer, replica)) return 0;  // a failed try: 502 or a retry
        // ProxySession::on_upstream_read: interim answers are not the answer.
        const unsigned status = parser->get().result_int();
        if (!ProxyRules::valid_status(status)) return 0;  // a failed try: 502 or a retry
        if (status >= 100 && status < 200 && status != 101) {
            res = parser->release();
            continue;
        }
        break;
    }

    // ProxySession::on_upstream_response.
    res = parser->release();
    parser.reset();
    if (res.result() == http::status::not_found) return 0;  // answered with the SPEC's 400 instead
    const unsigned status = res.result_int();
    const std::string body = res.body();
    const ringlb::FieldScan fields = ProxyRules::scan<ArenaFields>(res);
    if (fields.hop_by_hop) ProxyRules::strip_hop_by_hop<ArenaFields>(res);
    const bool bodiless = head || status < 200 || status == 204 || status == 304;
    if (!bodiless && (fields.hop_by_hop || !fields.content_length)) {
        res.content_length(res.body().size());
    } else if (bodiless && fields.odd_content_length) {
        res.erase(http::field::content_length);
    }
    res.set("X-Ringlb-Replica", "Server1");
    res.version(client_version);
    if (!client_keep_alive || client_version != 11 || res.count(http::field::connection) > 0) {
        res.keep_alive(client_keep_alive);
    }
    std::string sent;
    ringlb::WireFormat::write(res, sent, bodiless);
    check_sent(sent, head, status, bodiless ? std::string() : body,
               header_fields(wire.substr(answer_start), head));
    return 0;
}
