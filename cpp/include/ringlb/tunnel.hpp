// Tunnel: after a 101 Switching Protocols (RFC 9110 §7.8), the router stops
// speaking HTTP on that connection and copies bytes both ways between the
// client and the replica until each side has closed, as HAProxy's and
// nginx's tunnel modes do. WebSockets, h2c or any other upgraded protocol
// goes through unread.
//
// A side that ends its stream (EOF) has its end passed on as a half-close
// (shutdown of the other side's send), so a protocol that closes one way
// first still gets its last bytes. Any error ends both ways. The owner
// (ProxySession) keeps the sockets and the idle deadline: `activity` is
// called on every transfer so that it can move that deadline, and `done`
// once, when the tunnel is over.
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <array>
#include <cstddef>
#include <functional>
#include <memory>

#include "ringlb/upstream_pool.hpp"

namespace ringlb {

class Tunnel {
public:
    // Bytes per read and per direction: what the tunnel holds at most.
    static constexpr std::size_t window = 16 * 1024;

    Tunnel(Socket& client, Socket& upstream, std::function<void()> activity,
           std::function<void()> done);
    Tunnel(const Tunnel&) = delete;
    Tunnel& operator=(const Tunnel&) = delete;

    // `client_early` and `upstream_early` hold what each side sent after the
    // handshake and was already read: it goes across first. `owner` is held
    // by every pending handler (the session that owns the sockets and this).
    void start(std::shared_ptr<void> owner, boost::beast::flat_buffer& client_early,
               boost::beast::flat_buffer& upstream_early);

    bool finished() const noexcept { return finished_; }

private:
    struct Way {
        Socket& from;
        Socket& to;
        std::array<char, window> buf{};
        bool ended = false;  // `from` has closed its stream and `to` was told
        boost::beast::flat_buffer* early = nullptr;  // being written first
    };

    void write_early(Way& w);
    void write(Way& w, std::size_t n);
    void read(Way& w);
    void on_read(Way& w, boost::beast::error_code ec, std::size_t n);
    void on_write(Way& w, boost::beast::error_code ec);
    void finish();

    Way up_;    // client -> replica
    Way down_;  // replica -> client
    std::function<void()> activity_;
    std::function<void()> done_;
    std::shared_ptr<void> owner_;
    bool finished_ = false;
};

}  // namespace ringlb
