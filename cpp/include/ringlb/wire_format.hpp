// WireFormat: HTTP/1.1 messages to bytes, for the proxy's hot path.
//
// Byte for byte what Beast's http::serializer writes for a message whose body
// is sent whole (Content-Length or none; test_wire_format.cpp checks it
// against Beast for every case the router produces), at a fraction of the
// cost: profiling the router showed Beast's serializer at ~1.3 µs per
// response, walking its nested buffer sequences, against ~0.1 µs here.
// Messages come from Beast's parser or Beast's setters, so their fields are
// already valid; this only lays them out. A chunked message is handed to
// Beast's serializer.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <array>
#include <span>
#include <string>
#include <string_view>

#include "ringlb/field_arena.hpp"

namespace ringlb {

class WireFormat {
public:
    template <class Fields>
    using Request = boost::beast::http::request<boost::beast::http::string_body, Fields>;
    template <class Fields>
    using Response = boost::beast::http::response<boost::beast::http::string_body, Fields>;

    // Replaces `out` with the request (start line, fields, blank line, body);
    // with `header_only` the body is left out (the proxy sends it from where
    // it already is, rather than copying a body of up to max_body_bytes).
    // Fields: http::fields or ArenaFields (both instantiated in wire_format.cpp).
    template <class Fields>
    static void write(const Request<Fields>& req, std::string& out, bool header_only = false);
    // Replaces `out` with the response; with `header_only` the body is left
    // out (an answer to HEAD keeps its Content-Length but sends no body).
    template <class Fields>
    static void write(const Response<Fields>& res, std::string& out, bool header_only = false);

    // One piece of a streamed body as it goes on the wire, without a copy:
    // the piece itself, or with `chunked` (RFC 9112 §7.1) its size line,
    // the piece and CRLF, plus the last chunk when `last`. Fills `out` from
    // its start (at least 4 entries) and returns how many it used; `head`
    // holds the size line and must outlive the write, as must the piece.
    static std::size_t frame_piece(std::span<boost::asio::const_buffer> out,
                                   std::array<char, 24>& head, std::string_view piece,
                                   bool chunked, bool last);
};

#define RINGLB_WIRE_FORMAT_FOR(Fields, extern_)                                                    \
    extern_ template void WireFormat::write<Fields>(const Request<Fields>&, std::string&, bool);         \
    extern_ template void WireFormat::write<Fields>(const Response<Fields>&, std::string&, bool);
RINGLB_WIRE_FORMAT_FOR(boost::beast::http::fields, extern)
RINGLB_WIRE_FORMAT_FOR(ArenaFields, extern)

}  // namespace ringlb
