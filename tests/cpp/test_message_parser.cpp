// MessageParser: Beast's parser without trailer fields.
#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <string>
#include <string_view>

#include "ringlb/message_parser.hpp"
#include "ringlb/proxy_rules.hpp"

namespace {

namespace http = boost::beast::http;
using ringlb::FieldArena;
using ringlb::FieldAllocator;

// Parses `raw` whole with a parser whose message lives in `arena`, as the router does.
template <class Parser>
std::string fields_after(std::string_view raw, FieldArena& arena, boost::beast::error_code& ec,
                         std::string* body = nullptr) {
    typename Parser::value_type msg(std::piecewise_construct, std::make_tuple(),
                                    std::make_tuple(FieldAllocator<char>(&arena)));
    Parser p(std::move(msg));
    p.eager(true);
    p.put(boost::asio::buffer(raw.data(), raw.size()), ec);
    if (ec) return {};
    EXPECT_TRUE(p.is_done());
    std::string out;
    for (const auto& f : p.get()) out += std::string(f.name_string()) + ": " + std::string(f.value()) + ";";
    if (body) *body = p.get().body();
    return out;
}

// Parses `raw` as the router does: no error, the header's fields (a
// chunked body's trailer fields are not among them) and the body.
template <class Parser>
void expect_parsed(std::string_view raw, std::string_view fields, std::string_view body) {
    FieldArena arena;
    boost::beast::error_code ec;
    std::string got;
    EXPECT_EQ(fields_after<Parser>(raw, arena, ec, &got), fields);
    EXPECT_FALSE(ec);
    EXPECT_EQ(got, body);
}

// Found by fuzz/fuzz_request: Beast's parser appends a chunked body's trailer
// fields to the header's fields, so a trailer "Host" reached the replica as a
// second Host field that ProxyRules::check_request (run on the header) had
// never seen, and a trailer "Connection: host" made the strip remove Host.
TEST(MessageParser, DropsTrailersOfAChunkedRequest) {
    const std::string_view raw =
        "POST /up HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\nX-Trailer: 1\r\nHost: evil\r\nConnection: host\r\n\r\n";
    expect_parsed<ringlb::RequestParser>(raw, "Host: lb;Transfer-Encoding: chunked;", "abc");
    // What Beast's own parser does, and why the router does not use it as is.
    FieldArena arena;
    boost::beast::error_code ec;
    const std::string merged = fields_after<
        http::request_parser<http::string_body, FieldAllocator<char>>>(raw, arena, ec);
    EXPECT_NE(merged.find("Host: evil"), std::string::npos) << merged;
}

TEST(MessageParser, DropsTrailersOfAChunkedResponse) {
    expect_parsed<ringlb::ResponseParser>(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2\r\nok\r\n0\r\nSet-Cookie: late=1\r\n\r\n",
        "Transfer-Encoding: chunked;", "ok");
}

TEST(MessageParser, StillRefusesATrailerThatReframesTheMessage) {
    FieldArena arena;
    boost::beast::error_code ec;
    fields_after<ringlb::RequestParser>(
        "POST / HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n",
        arena, ec);
    EXPECT_EQ(ec, http::error::bad_content_length);
}

TEST(MessageParser, KeepsEveryHeaderFieldInOrder) {
    FieldArena arena;
    boost::beast::error_code ec;
    EXPECT_EQ(fields_after<ringlb::RequestParser>(
                  "GET / HTTP/1.1\r\nHost: lb\r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 0\r\n\r\n", arena, ec),
              "Host: lb;X-A: 1;X-A: 2;Content-Length: 0;");
    EXPECT_FALSE(ec);
}

}  // namespace
