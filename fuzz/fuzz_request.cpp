// Fuzzes the router's reading of client requests and its framing decision:
// the steps of ProxySession from do_read_header to do_route, without sockets.
//
// Input: one byte that picks where the rest is cut in two (at byte * size / 255),
// then the bytes a client sends on one connection. The two parts arrive as
// two reads, then the client closes: the header loop sees a header arrive in
// pieces, and everything after a complete request is the next, pipelined one.
//
// Per request, as the router does it:
//   header: the router's parser (MessageParser) on an arena-backed message, with the
//           router's limits (RouterConfig defaults), put() over the buffer,
//           the exact-bytes header limit and the blank-line check of parse_header;
//   framing: ProxyRules::check_header_size and check_request on the header as sent;
//   body:   what http::async_read does (eager parsing, put_eof at the end);
//   route:  the hop-by-hop strip and the bytes do_route writes upstream.
// Rejections and parse errors end the connection, as in the router.
//
// Findings besides crashes and sanitizer reports: what the router forwards
// must be one request that a replica parses back to the same method, target
// and body with no byte left over (else a request hides in another: request
// smuggling), and must pass the router's own framing rules.
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
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
#include <string>
#include <string_view>

#include "ringlb/field_arena.hpp"
#include "ringlb/message_parser.hpp"
#include "ringlb/proxy_rules.hpp"
#include "ringlb/router.hpp"
#include "ringlb/wire_format.hpp"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using ringlb::ArenaFields;
using ringlb::ProxyRules;
using Parser = ringlb::RequestParser;  // the router's: Beast's, without trailer fields

// As in proxy_session.cpp: bytes per read, and the buffer's room beyond the header limit.
constexpr std::size_t first_read_size = 8192;
// Pipelined requests handled per input: enough to reach the arena's reuse.
constexpr int max_requests = 8;

[[noreturn]] void finding(const char* what, std::string_view detail) {
    std::fprintf(stderr, "fuzz_request: %s\n--- forwarded ---\n%.*s\n---\n", what,
                 static_cast<int>(detail.size()), detail.data());
    std::abort();
}

// The client's side of the connection: its bytes in two reads, then EOF.
class Client {
public:
    Client(std::string_view first, std::string_view second) : parts_{first, second} {}

    // Appends up to `room` bytes (at most one read's worth) to `buffer`; false at EOF.
    bool read(beast::flat_buffer& buffer, std::size_t room) {
        while (next_ < parts_.size() && parts_[next_].empty()) ++next_;
        if (next_ == parts_.size() || room == 0) return false;
        auto& part = parts_[next_];
        const std::size_t n = std::min({part.size(), room, first_read_size});
        buffer.commit(boost::asio::buffer_copy(buffer.prepare(n), boost::asio::buffer(part.data(), n)));
        part.remove_prefix(n);
        return true;
    }

private:
    std::array<std::string_view, 2> parts_;
    std::size_t next_ = 0;
};

// ProxySession::parse_header and its reads: true when the header is complete
// and passed the size limit; false when the router would answer an error or
// close. `header_bytes` counts what the parser took in, as header_bytes_ does.
bool read_header(Parser& parser, beast::flat_buffer& buffer, Client& client,
                 std::size_t max_header_bytes, std::size_t& header_bytes) {
    for (;;) {
        while (buffer.size() > 0) {
            beast::error_code ec;
            const std::size_t n = parser.put(buffer.data(), ec);
            buffer.consume(n);
            header_bytes += n;
            if (ec == http::error::need_more) break;
            if (ec) return false;  // 400 / 431
            if (parser.is_header_done()) return true;
            if (n == 0) break;
        }
        if (ProxyRules::check_header_size(header_bytes + buffer.size(), max_header_bytes)) return false;
        const auto* bytes = static_cast<const char*>(buffer.data().data());
        if (std::string_view(bytes, buffer.size()).find("\r\n\r\n") != std::string_view::npos) {
            return false;  // 400 bad request line
        }
        if (!client.read(buffer, buffer.max_size() - buffer.size())) return false;
    }
}

// The body, as http::async_read reads it into a parser whose header is done.
bool read_body(Parser& parser, beast::flat_buffer& buffer, Client& client) {
    parser.eager(true);
    while (!parser.is_done()) {
        if (buffer.size() == 0) {
            if (!client.read(buffer, buffer.max_size())) {
                beast::error_code ec;
                parser.put_eof(ec);  // the header is done, so the parser got some
                return !ec && parser.is_done();
            }
        }
        beast::error_code ec;
        const std::size_t n = parser.put(buffer.data(), ec);
        buffer.consume(n);
        if (ec == http::error::need_more) {
            if (!client.read(buffer, buffer.max_size() - buffer.size())) {
                parser.put_eof(ec);
                return !ec && parser.is_done();
            }
            continue;
        }
        if (ec) return false;  // 400 / 413
    }
    return true;
}

// What a replica makes of the bytes the router forwards.
void check_forwarded(const ringlb::ArenaRequest& sent, const std::string& wire) {
    http::request_parser<http::string_body> replica;
    replica.header_limit(UINT32_MAX);
    replica.body_limit(UINT64_MAX);
    replica.eager(true);
    std::string_view rest = wire;
    while (!rest.empty() && !replica.is_done()) {
        beast::error_code ec;
        const std::size_t n = replica.put(boost::asio::buffer(rest.data(), rest.size()), ec);
        rest.remove_prefix(n);
        if (ec) finding(("the forwarded request does not parse: " + ec.message()).c_str(), wire);
        if (n == 0) break;
    }
    if (!replica.is_done()) {
        beast::error_code ec;
        if (replica.got_some()) replica.put_eof(ec);
        if (!replica.is_done()) finding("the forwarded request is incomplete", wire);
    }
    if (!rest.empty()) finding("bytes after the forwarded request (a second request)", wire);
    const auto& got = replica.get();
    if (got.method_string() != sent.method_string() || got.target() != sent.target() ||
        got.body() != sent.body()) {
        finding("the replica reads another method, target or body", wire);
    }
    if (const auto rejected = ProxyRules::check_request(got.base(), replica.chunked())) {
        finding(("the forwarded request breaks the router's own rules: " + rejected->message).c_str(),
                wire);
    }
}

// ProxySession::do_route's rewriting, then the check of what goes upstream.
void forward(ringlb::ArenaRequest& req) {
    if (ProxyRules::scan<ArenaFields>(req).hop_by_hop) {
        const bool chunked = req.chunked();
        ProxyRules::strip_hop_by_hop<ArenaFields>(req);
        if (chunked) req.content_length(req.body().size());
    }
    if (req.version() < 11) ProxyRules::ensure_host<ArenaFields>(req.base());
    req.version(11);
    std::string wire;
    ringlb::WireFormat::write(req, wire, true);
    wire += req.body();  // sent from where it is, right after the header
    check_forwarded(req, wire);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
    const std::size_t cut = static_cast<std::size_t>(data[0]) * bytes.size() / 255;
    Client client(bytes.substr(0, cut), bytes.substr(cut));

    const ringlb::RouterConfig config;  // the router's default limits
    ringlb::FieldArena arena;
    beast::flat_buffer buffer(config.max_header_bytes + first_read_size + 65536);
    ringlb::ArenaRequest req(std::piecewise_construct, std::make_tuple(),
                             std::make_tuple(ringlb::FieldAllocator<char>(&arena)));
    std::optional<Parser> parser;
    for (int i = 0; i < max_requests; ++i) {
        if (buffer.size() == 0 && !client.read(buffer, first_read_size)) break;  // closed between requests
        // ProxySession::do_read_header: the last message goes back into a new parser.
        req.body().clear();
        parser.emplace(std::move(req));
        parser->header_limit(static_cast<std::uint32_t>(
            std::min<std::size_t>(config.max_header_bytes + 1, UINT32_MAX)));
        parser->body_limit(config.max_body_bytes);
        std::size_t header_bytes = 0;
        if (!read_header(*parser, buffer, client, config.max_header_bytes, header_bytes)) break;
        // ProxySession::on_read_header: framing decided on the header as sent.
        if (ProxyRules::check_header_size(header_bytes, config.max_header_bytes)) break;
        if (ProxyRules::check_request(parser->get().base(), parser->chunked())) break;
        if (!read_body(*parser, buffer, client)) break;
        const bool keep_alive = parser->keep_alive();
        req = parser->release();
        parser.reset();
        forward(req);
        if (!keep_alive) break;
    }
    return 0;
}
