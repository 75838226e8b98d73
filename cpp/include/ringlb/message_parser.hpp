// MessageParser: Beast's parser for the router's messages (string body,
// fields in a session's FieldArena), minus one thing: trailer fields.
//
// Beast appends the fields that may follow a chunked body (the trailer
// section) to the header's fields, where nothing tells them apart any more.
// A proxy must not merge trailers into the header it forwards (RFC 9110
// §6.5.1): the router decides framing on the header as sent
// (ProxyRules::check_request), and a trailer "Host" or "Connection: host"
// would reach the replica unchecked, a second Host field or none. Trailers
// are dropped instead, as nginx does. Beast still parses them and still
// refuses a trailer that would reframe the message (Content-Length or
// Transfer-Encoding after a chunked body is an error), so only the insertion
// into the fields is skipped.
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "ringlb/field_arena.hpp"

namespace ringlb {

// Body: string_body for a message read whole, buffer_body for one streamed
// through a window (the converting constructor takes the string_body parser
// once its header is done).
template <bool isRequest, class Body = boost::beast::http::string_body>
class MessageParser : public boost::beast::http::parser<isRequest, Body, FieldAllocator<char>> {
    using Base = boost::beast::http::parser<isRequest, Body, FieldAllocator<char>>;

public:
    using Base::Base;

private:
    void on_field_impl(boost::beast::http::field name, boost::beast::string_view name_string,
                       boost::beast::string_view value, boost::beast::error_code& ec) override {
        ec = {};
        // Past the header, a field is a trailer: parsed, not kept.
        if (this->is_header_done()) return;
        // What Beast's parser does with a header field.
        this->get().insert(name, name_string, value);
    }
};

using RequestParser = MessageParser<true>;
using ResponseParser = MessageParser<false>;
using StreamRequestParser = MessageParser<true, boost::beast::http::buffer_body>;
using StreamResponseParser = MessageParser<false, boost::beast::http::buffer_body>;

}  // namespace ringlb
