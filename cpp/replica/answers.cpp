#include "answers.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
// Boost.JSON compiled into this binary: a static executable links no libboost_json.so.
#include <boost/json/src.hpp>

#include "ringlb/wire_format.hpp"

namespace ringlb::replica {
namespace {

namespace http = boost::beast::http;

std::string home_body(std::string_view id) {
    boost::json::object o;
    o["message"] = "Hello from Server: " + std::string(id);
    o["status"] = "successful";
    return boost::json::serialize(o);
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
                    WireFormat::write(res, bytes_[index(r, http10, keep_alive, head)], head);
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
