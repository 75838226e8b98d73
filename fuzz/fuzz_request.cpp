// Fuzzes the router's reading of client requests and its framing decision:
// the steps of ProxySession from do_read_header to do_route and the bytes it
// writes upstream, without sockets. This mirrors proxy_session.cpp step by
// step (the session owns sockets and timers and cannot run without them):
// a change to the session's reading or forwarding belongs here too.
//
// Input: a cut byte, a window byte, then the bytes a client sends on one
// connection. They arrive as two reads, cut at cut * size / 255, then the
// client closes: the header loop sees headers arrive in pieces, and what
// follows a complete request is the next, pipelined one. A streamed body goes
// through a window of `window byte` bytes (0: the router's 64 KiB), so that
// inputs of a few KiB cross many windows.
//
// Per request, as the router does it:
//   header:  the router's parser (MessageParser) on an arena-backed message,
//            with the router's limits (RouterConfig defaults), put() over the
//            buffer, the exact-bytes header limit and parse_header's blank-line check;
//   framing: ProxyRules::check_header_size and check_request on the header as sent;
//   body:    admin and small sized bodies read whole, as http::async_read does;
//            chunked and large ones streamed (start_body, do_stream_parse),
//            forwarded whole after all when they end in the first window;
//   route:   the hop-by-hop strip, Host for HTTP/1.0, and the bytes do_route
//            and do_stream_write send upstream.
// Rejections and parse errors end the connection, as in the router.
//
// Findings besides crashes and sanitizer reports: what the router forwards
// must be one request that a replica parses back to the same method, target
// and body with no byte left over (else a request hides in another: request
// smuggling), and must pass the router's own framing rules.
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
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
#include "ringlb/key_source.hpp"
#include "ringlb/message_parser.hpp"
#include "ringlb/proxy_rules.hpp"
#include "ringlb/proxy_session.hpp"
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

// What a replica makes of the bytes the router forwards for `sent`, whose
// body is `body` (for a streamed one, every piece of it).
void check_forwarded(const ringlb::ArenaRequest& sent, std::string_view body, const std::string& wire) {
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
        got.body() != body) {
        finding("the replica reads another method, target or body", wire);
    }
    if (const auto rejected = ProxyRules::check_request(got.base(), replica.chunked())) {
        finding(("the forwarded request breaks the router's own rules: " + rejected->message).c_str(),
                wire);
    }
}

// ProxySession::do_route's rewriting of the header, laid out as it goes upstream.
std::string route(ringlb::ArenaRequest& req, bool streaming, bool stream_chunked) {
    if (ProxyRules::scan<ArenaFields>(req).hop_by_hop) {
        const bool chunked = req.count(http::field::transfer_encoding) > 0;
        ProxyRules::strip_hop_by_hop<ArenaFields>(req);
        if (chunked && !streaming) req.content_length(req.body().size());
    }
    if (req.version() < 11) ProxyRules::ensure_host<ArenaFields>(req.base());
    ProxyRules::add_forwarded<ArenaFields>(req.base(), "192.0.2.1");
    if (streaming && stream_chunked) req.chunked(true);
    req.version(11);
    std::string wire;
    ringlb::WireFormat::write(req, wire, true);
    return wire;
}

// ProxySession::do_stream_write: one piece of a streamed body as it goes
// upstream, framed by the router's own WireFormat::frame_piece.
void append_piece(std::string& wire, std::string_view piece, bool chunked, bool last) {
    std::array<boost::asio::const_buffer, 4> out;
    std::array<char, 24> head;
    const std::size_t k = ringlb::WireFormat::frame_piece(out, head, piece, chunked, last);
    for (std::size_t i = 0; i < k; ++i) {
        wire.append(static_cast<const char*>(out[i].data()), out[i].size());
    }
}

// ProxySession::start_body and do_stream_parse: a body of unknown or large
// length goes through a window; the first window decides whether it is
// forwarded whole after all. False where the router answers an error.
bool stream_body(Parser& parser, ringlb::ArenaRequest& req, beast::flat_buffer& buffer,
                 Client& client, std::size_t window_size) {
    req.base() = std::move(parser.get().base());
    req.body().clear();
    ringlb::StreamRequestParser stream(
        static_cast<http::request_parser<http::string_body, ringlb::FieldAllocator<char>>&&>(
            std::move(parser)));
    const bool chunked = stream.chunked();
    std::string window(window_size, '\0');
    bool routed = false;
    std::string wire, body;
    for (;;) {
        auto& b = stream.get().body();
        b.data = window.data();
        b.size = window.size();
        while (buffer.size() > 0 && !stream.is_done()) {
            beast::error_code ec;
            const std::size_t n = stream.put(buffer.data(), ec);
            buffer.consume(n);
            if (ec == http::error::need_buffer || ec == http::error::need_more) break;
            if (ec) return false;  // 400 / 413
            if (n == 0) break;
        }
        const std::string_view piece(window.data(), window.size() - b.size);
        if (!piece.empty() || stream.is_done()) {
            if (!routed && stream.is_done()) {
                // The whole body fit in the first window: forwarded with its length.
                req.body().assign(piece);
                std::string whole = route(req, false, chunked);
                whole += req.body();
                check_forwarded(req, req.body(), whole);
                return true;
            }
            if (!routed) {
                routed = true;
                wire = route(req, true, chunked);
            }
            append_piece(wire, piece, chunked, stream.is_done());
            body += piece;
            if (stream.is_done()) {
                check_forwarded(req, body, wire);
                return true;
            }
            continue;
        }
        // The client closed in the middle of the body: partial_message, closed.
        if (!client.read(buffer, buffer.max_size() - buffer.size())) return false;
    }
}

// ProxySession::should_stream: admin bodies and small sized ones are read
// whole; a chunked body or one above the window is streamed.
bool should_stream(const Parser& parser, bool admin) {
    if (admin) return false;
    const auto length = parser.content_length();
    return !length || *length > ringlb::ProxySession::stream_window;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::string_view bytes(reinterpret_cast<const char*>(data + 2), size - 2);
    const std::size_t cut = static_cast<std::size_t>(data[0]) * bytes.size() / 255;
    // The router's window is 64 KiB; inputs of a few KiB cross many small ones.
    const std::size_t window_size = data[1] == 0 ? ringlb::ProxySession::stream_window : data[1];
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
        const bool keep_alive = parser->keep_alive();
        const std::string_view path = ringlb::KeySource::path_of(parser->get().target());
        const bool admin = path == "/rep" || path == "/add" || path == "/rm";
        if (!parser->is_done() && should_stream(*parser, admin)) {
            if (!stream_body(*parser, req, buffer, client, window_size)) break;
            parser.reset();
        } else {
            if (!read_body(*parser, buffer, client)) break;
            req = parser->release();
            parser.reset();
            // ProxySession::on_request: the admin API answers these itself.
            if (!admin) {
                std::string wire = route(req, false, false);
                wire += req.body();  // sent from where it is, right after the header
                check_forwarded(req, req.body(), wire);
            }
        }
        if (!keep_alive) break;
    }
    return 0;
}
