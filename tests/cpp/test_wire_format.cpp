#include <gtest/gtest.h>

#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http.hpp>

#include "ringlb/wire_format.hpp"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using ringlb::WireFormat;

template <bool isRequest>
std::string beast_bytes(const http::message<isRequest, http::string_body>& m, bool header_only = false) {
    http::serializer<isRequest, http::string_body> sr(m);
    sr.split(header_only);
    std::string out;
    beast::error_code ec;
    while (!(header_only ? sr.is_header_done() : sr.is_done())) {
        sr.next(ec, [&](beast::error_code&, const auto& buffers) {
            for (const auto b : beast::buffers_range_ref(buffers)) {
                out.append(static_cast<const char*>(b.data()), b.size());
            }
            sr.consume(beast::buffer_bytes(buffers));
        });
        EXPECT_FALSE(ec);
    }
    return out;
}

// The message Beast parses from `wire`, which must hold one whole message.
template <bool isRequest>
http::message<isRequest, http::string_body> parsed(const std::string& wire) {
    http::parser<isRequest, http::string_body> p;
    p.eager(true);
    beast::error_code ec;
    p.put(boost::asio::buffer(wire), ec);
    EXPECT_FALSE(ec) << ec.message();
    return p.release();
}

http::response<http::string_body> parsed_response(const std::string& wire) {
    return parsed<false>(wire);
}

http::request<http::string_body> parsed_request(const std::string& wire) {
    return parsed<true>(wire);
}

TEST(WireFormat, ResponsesMatchBeast) {
    std::vector<http::response<http::string_body>> cases;
    {
        http::response<http::string_body> r(http::status::ok, 11);
        r.set(http::field::server, "ringlb-replica");
        r.set(http::field::content_type, "application/json");
        r.body() = R"({"message":"Hello from Server: 1","status":"successful"})";
        r.prepare_payload();
        r.set("X-Ringlb-Replica", "Server1");
        cases.push_back(r);
    }
    cases.emplace_back(http::status::service_unavailable, 10);
    cases.emplace_back(static_cast<http::status>(599), 11);  // no standard reason
    cases.push_back(parsed_response("HTTP/1.1 404 Nicht Gefunden\r\nX-A: 1\r\nx-a: 2\r\n"
                                    "Content-Length: 3\r\n\r\nabc"));
    cases.push_back(parsed_response("HTTP/1.0 204 No Content\r\nWeird-Header:   spaced  \r\n\r\n"));
    {
        auto r = parsed_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "3\r\nabc\r\n0\r\n\r\n");
        cases.push_back(r);  // chunked: handed to Beast
    }
    for (const auto& r : cases) {
        std::string mine;
        WireFormat::write(r, mine);
        EXPECT_EQ(mine, beast_bytes(r));
        WireFormat::write(r, mine, true);
        EXPECT_EQ(mine, beast_bytes(r, true));
    }
}

TEST(WireFormat, RequestsMatchBeast) {
    std::vector<http::request<http::string_body>> cases;
    cases.emplace_back(http::verb::get, "/home?id=123456", 11);
    cases.back().set(http::field::host, "127.0.0.1:5000");
    cases.push_back(parsed_request("POST /add HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n{\"n\": 1}"));
    cases.push_back(parsed_request("PURGE /cache HTTP/1.0\r\nX: y\r\n\r\n"));  // unknown verb
    cases.push_back(parsed_request("GET http://example.com/a?b=c HTTP/1.1\r\nCookie: a=1\r\n"
                                   "Cookie: b=2\r\n\r\n"));
    for (const auto& r : cases) {
        std::string mine;
        WireFormat::write(r, mine);
        EXPECT_EQ(mine, beast_bytes(r));
    }
}

TEST(WireFormat, OutputReplacesTheBuffer) {
    http::response<http::string_body> r(http::status::ok, 11);
    std::string out = "stale bytes";
    WireFormat::write(r, out);
    EXPECT_EQ(out, "HTTP/1.1 200 OK\r\n\r\n");
}

}  // namespace
