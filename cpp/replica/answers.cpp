#include "answers.hpp"

#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
// Boost.JSON compiled into this binary: a static executable links no libboost_json.so.
#include <boost/json/src.hpp>

namespace ringlb::replica {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

std::string home_body(std::string_view id) {
    boost::json::object o;
    o["message"] = "Hello from Server: " + std::string(id);
    o["status"] = "successful";
    return boost::json::serialize(o);
}

// The bytes Beast's serializer writes for `res`; with `head`, only the
// header (a HEAD answer keeps the Content-Length of the body it omits).
std::string serialize(const http::response<http::string_body>& res, bool head) {
    std::string out;
    http::serializer<false, http::string_body> sr(res);
    sr.split(head);
    beast::error_code ec;
    const auto done = [&] { return head ? sr.is_header_done() : sr.is_done(); };
    while (!done() && !ec) {
        sr.next(ec, [&](beast::error_code&, const auto& buffers) {
            std::size_t n = 0;
            for (const auto b : beast::buffers_range_ref(buffers)) {
                out.append(static_cast<const char*>(b.data()), b.size());
                n += b.size();
            }
            sr.consume(n);
        });
    }
    return out;
}

}  // namespace

Answers::Answers(std::string_view server_id) {
    const std::string home = home_body(server_id);
    for (const Resource r :
         {Resource::home, Resource::heartbeat, Resource::not_found, Resource::bad_request,
          Resource::header_too_large, Resource::body_too_large}) {
        for (const bool http10 : {false, true}) {
            for (const bool keep_alive : {false, true}) {
                for (const bool head : {false, true}) {
                    http::response<http::string_body> res;
                    res.version(http10 ? 10 : 11);
                    res.set(http::field::server, "ringlb-replica");
                    switch (r) {
                        case Resource::home:
                            res.result(http::status::ok);
                            res.set(http::field::content_type, "application/json");
                            res.body() = home;
                            break;
                        case Resource::heartbeat:
                            res.result(http::status::ok);
                            break;
                        case Resource::not_found:
                            res.result(http::status::not_found);
                            res.set(http::field::content_type, "application/json");
                            res.body() = R"({"message": "not found", "status": "failure"})";
                            break;
                        case Resource::bad_request:
                            res.result(http::status::bad_request);
                            res.set(http::field::content_type, "application/json");
                            res.body() = R"({"message": "malformed HTTP request", "status": "failure"})";
                            break;
                        case Resource::header_too_large:
                            res.result(http::status::request_header_fields_too_large);
                            res.set(http::field::content_type, "application/json");
                            res.body() = R"({"message": "request header too large", "status": "failure"})";
                            break;
                        case Resource::body_too_large:
                            res.result(http::status::payload_too_large);
                            res.set(http::field::content_type, "application/json");
                            res.body() = R"({"message": "request body too large", "status": "failure"})";
                            break;
                    }
                    res.keep_alive(keep_alive && !closes(r));
                    res.prepare_payload();
                    bytes_[index(r, http10, keep_alive, head)] = serialize(res, head);
                }
            }
        }
    }
}

std::size_t Answers::index(Resource r, bool http10, bool keep_alive, bool head) noexcept {
    return static_cast<std::size_t>(r) * 8 + (http10 ? 4 : 0) + (keep_alive ? 2 : 0) +
           (head ? 1 : 0);
}

std::string_view Answers::get(Resource r, unsigned version, bool keep_alive,
                              bool head) const noexcept {
    return bytes_[index(r, version == 10, keep_alive, head)];
}

Resource Answers::route(std::string_view path, bool get_or_head) noexcept {
    if (get_or_head && path == "/home") return Resource::home;
    if (get_or_head && path == "/heartbeat") return Resource::heartbeat;
    return Resource::not_found;
}

}  // namespace ringlb::replica
