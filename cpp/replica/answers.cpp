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
    struct Content {
        Resource resource;
        http::status status;
        std::string body;  // JSON; empty: no body and no Content-Type
    };
    const Content contents[] = {
        {Resource::home, http::status::ok, home_body(server_id)},
        {Resource::heartbeat, http::status::ok, ""},
        {Resource::not_found, http::status::not_found,
         R"({"message": "not found", "status": "failure"})"},
        {Resource::bad_request, http::status::bad_request,
         R"({"message": "malformed HTTP request", "status": "failure"})"},
        {Resource::header_too_large, http::status::request_header_fields_too_large,
         R"({"message": "request header too large", "status": "failure"})"},
        {Resource::body_too_large, http::status::payload_too_large,
         R"({"message": "request body too large", "status": "failure"})"},
    };
    for (const auto& c : contents) {
        for (const bool http10 : {false, true}) {
            for (const bool keep_alive : {false, true}) {
                for (const bool head : {false, true}) {
                    http::response<http::string_body> res(c.status, http10 ? 10 : 11);
                    res.set(http::field::server, "ringlb-replica");
                    if (!c.body.empty()) res.set(http::field::content_type, "application/json");
                    res.body() = c.body;
                    res.keep_alive(keep_alive && !closes(c.resource));
                    res.prepare_payload();
                    WireFormat::write(res, bytes_[index(c.resource, http10, keep_alive, head)],
                                      head);
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
