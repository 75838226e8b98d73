#include "ringlb/tunnel.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/write.hpp>

#include <utility>

namespace ringlb {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

Tunnel::Tunnel(Socket& client, Socket& upstream, std::function<void()> activity,
               std::function<void()> done)
    : up_{client, upstream}, down_{upstream, client}, activity_(std::move(activity)),
      done_(std::move(done)) {}

void Tunnel::start(std::shared_ptr<void> owner, beast::flat_buffer& client_early,
                   beast::flat_buffer& upstream_early) {
    owner_ = std::move(owner);
    // Early bytes are written from where they are (the owner does not touch
    // its buffers while the tunnel runs), then each way reads on its own.
    up_.early = &client_early;
    down_.early = &upstream_early;
    write_early(up_);
    write_early(down_);
}

void Tunnel::write_early(Way& w) {
    if (w.early->size() == 0) {
        w.early = nullptr;
        return read(w);
    }
    asio::async_write(w.to, w.early->data(),
                      [this, &w, owner = owner_](beast::error_code ec, std::size_t) {
                          w.early->consume(w.early->size());
                          w.early = nullptr;
                          on_write(w, ec);
                      });
}

void Tunnel::read(Way& w) {
    if (finished_) return;
    w.from.async_read_some(asio::buffer(w.buf),
                           [this, &w, owner = owner_](beast::error_code ec, std::size_t n) {
                               on_read(w, ec, n);
                           });
}

void Tunnel::on_read(Way& w, beast::error_code ec, std::size_t n) {
    if (finished_) return;
    if (ec == asio::error::eof) {
        // Pass the end on and keep the other way open until it ends too.
        w.ended = true;
        beast::error_code ignored;
        w.to.shutdown(tcp::socket::shutdown_send, ignored);
        if (up_.ended && down_.ended) finish();
        return;
    }
    if (ec) return finish();
    activity_();
    write(w, n);
}

void Tunnel::write(Way& w, std::size_t n) {
    asio::async_write(w.to, asio::buffer(w.buf.data(), n),
                      [this, &w, owner = owner_](beast::error_code ec, std::size_t) {
                          on_write(w, ec);
                      });
}

void Tunnel::on_write(Way& w, beast::error_code ec) {
    if (finished_) return;
    if (ec) return finish();
    activity_();
    read(w);
}

void Tunnel::finish() {
    if (finished_) return;
    finished_ = true;
    // The owner closes both sockets, which ends the other way's operation;
    // its handler sees finished_ and returns.
    auto done = std::move(done_);
    done();
    owner_.reset();
}

}  // namespace ringlb
