// Answers: every response the replica can give, laid out once at start.
//
// The replica's answers depend only on the resource, the request's HTTP
// version, whether the connection stays open and whether the method is HEAD:
// 6 x 2 x 2 x 2 byte strings, each built as a Beast message and laid out by
// WireFormat (byte for byte what Beast's serializer writes). A request then
// costs a table lookup instead of building a message and serializing it,
// which took more user time than the rest of a request together; and
// bench/proxy.py runs the replicas on the core that wrk uses, so what they
// spend per request caps every proxy measured there.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace ringlb::replica {

// The last three are errors that close the connection: malformed HTTP (400),
// a header over the limit (431), a body over the limit (413).
enum class Resource { home, heartbeat, not_found, bad_request, header_too_large, body_too_large };

class Answers {
public:
    // `server_id` is what GET /home reports (SPEC §1).
    explicit Answers(std::string_view server_id);

    // The whole response: status line, header and (unless `head`) body.
    // `version` is the request's (10 = HTTP/1.0; anything else is answered
    // as HTTP/1.1). An error answer always closes the connection.
    std::string_view get(Resource r, unsigned version, bool keep_alive, bool head) const noexcept;

    // The resource a request path (without its query) names, for GET and HEAD.
    static Resource route(std::string_view path, bool get_or_head) noexcept;
    static bool closes(Resource r) noexcept { return r >= Resource::bad_request; }

private:
    static std::size_t index(Resource r, bool http10, bool keep_alive, bool head) noexcept;
    std::array<std::string, 48> bytes_;
};

}  // namespace ringlb::replica
