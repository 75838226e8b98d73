#include "ringlb/router.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <future>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "ringlb/io_worker.hpp"
#include "ringlb/proxy_session.hpp"
#include "ringlb/router_state.hpp"

namespace ringlb {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// What a client past the connection cap reads before its connection closes.
constexpr std::string_view over_capacity_response =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 81\r\n"
    "Connection: close\r\n"
    "\r\n"
    R"({"message": "<Error> too many connections: try again later", "status": "failure"})";
static_assert(over_capacity_response.size() - over_capacity_response.find("\r\n\r\n") - 4 == 81);

// Runs `fn` on `ioc`'s thread and waits for it. Precondition: that thread runs
// and is not the caller.
template <class Fn>
void run_on(asio::io_context& ioc, Fn fn) {
    std::promise<void> done;
    asio::post(ioc, [&] {
        fn();
        done.set_value();
    });
    done.get_future().wait();
}

}  // namespace

struct Router::Impl {
    explicit Impl(RouterConfig config) : state(std::move(config)) {
        workers.reserve(state.threads.cpus);
        for (unsigned i = 0; i < state.threads.cpus; ++i) {
            workers.push_back(std::make_unique<IoWorker>(state, i));
        }
    }

    // One listening socket: the data port, or the admin listener. Both live
    // on workers[0] and are touched on its thread once running.
    struct Acceptor {
        Listener kind = Listener::data;
        std::optional<tcp::acceptor> socket;
        std::optional<asio::steady_timer> retry;
        std::atomic<std::uint16_t> port{0};
    };

    void listen(Acceptor& a, const tcp::endpoint& endpoint, const std::string& what);
    void do_accept(Acceptor& a);
    void on_accept(Acceptor& a, const boost::system::error_code& ec, Socket socket,
                   IoWorker* owner);
    void close_acceptors();
    // On an I/O thread or the control worker: where stop() and
    // reconfigure(), which wait for the I/O threads, would deadlock.
    bool on_own_thread() const noexcept {
        for (const auto& w : workers) {
            if (w->on_thread()) return true;
        }
        return state.control.on_worker_thread();
    }

    // Declared first, destroyed last: every worker and session refers to it.
    RouterState state;
    std::vector<std::unique_ptr<IoWorker>> workers;
    Acceptor data{Listener::data, {}, {}, {}};
    Acceptor admin{Listener::admin, {}, {}, {}};
    std::size_t next_worker = 0;             // workers[0]'s thread only
    std::mutex lifecycle;                    // start() / stop()
    std::atomic<bool> running{false};
};

void Router::Impl::listen(Acceptor& a, const tcp::endpoint& endpoint, const std::string& what) {
    auto& first = workers.front()->ioc();
    tcp::acceptor acceptor(first);
    boost::system::error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::system_error(ec, "cannot listen on " + what);
    a.port = acceptor.local_endpoint().port();
    a.socket.emplace(std::move(acceptor));
    a.retry.emplace(first);
}

void Router::Impl::do_accept(Acceptor& a) {
    // Each connection goes to the next worker in turn and lives there.
    IoWorker* owner = workers[next_worker].get();
    next_worker = (next_worker + 1) % workers.size();
    a.socket->async_accept(owner->ioc(),
                           [this, &a, owner](const boost::system::error_code& ec, Socket s) {
                               on_accept(a, ec, std::move(s), owner);
                           });
}

void Router::Impl::on_accept(Acceptor& a, const boost::system::error_code& ec, Socket socket,
                             IoWorker* owner) {
    if (ec == asio::error::operation_aborted || !a.socket->is_open()) return;
    if (ec) {
        // Out of file descriptors and the like: try again shortly rather than spin.
        a.retry->expires_after(std::chrono::milliseconds(50));
        a.retry->async_wait([this, &a](const boost::system::error_code& e) {
            if (!e && a.socket->is_open()) do_accept(a);
        });
        return;
    }
    // The acceptors run on workers[0]'s thread: its copy of the live limits.
    const std::size_t cap = workers.front()->limits().current().max_connections;
    if (state.connections.load(std::memory_order_relaxed) >= cap) {
        auto s = std::make_shared<Socket>(std::move(socket));
        asio::async_write(*s, asio::buffer(over_capacity_response),
                          [s](const boost::system::error_code&, std::size_t) {
                              boost::system::error_code ignored;
                              s->shutdown(tcp::socket::shutdown_both, ignored);
                              s->close(ignored);
                          });
    } else {
        state.connections.fetch_add(1, std::memory_order_relaxed);
        // The socket belongs to its worker's io_context; the session is made there.
        asio::post(owner->ioc(), [owner, kind = a.kind, s = std::move(socket)]() mutable {
            std::make_shared<ProxySession>(*owner, std::move(s), kind)->run();
        });
    }
    do_accept(a);
}

void Router::Impl::close_acceptors() {
    for (Acceptor* a : {&data, &admin}) {
        if (!a->socket) continue;
        boost::system::error_code ignored;
        a->socket->close(ignored);
        a->retry->cancel();
    }
}

Router::Router(RouterConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}

Router::~Router() {
    try {
        stop();
    } catch (...) {
        // stop() only throws when called from a router thread; nothing to do then.
    }
}

void Router::start() {
    std::lock_guard lock(impl_->lifecycle);
    if (impl_->running) throw std::logic_error("the router is already running");
#if defined(__GLIBC__)
    // glibc raises its mmap threshold to the size of each large block freed,
    // so after the first 1 MB body every later one comes from the heap, whose
    // holes it never returns: 2,000 clients sending 1 MB once kept ~0.9 GB
    // after they left. A fixed threshold keeps blocks over 128 KiB in their
    // own mappings, returned to the system on free. (Process-wide; Python's
    // own allocations are small and unaffected.)
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
    auto& st = impl_->state;
    auto& first = impl_->workers.front()->ioc();
    impl_->listen(impl_->data, tcp::endpoint(st.address, st.config.port),
                  st.config.host + ":" + std::to_string(st.config.port));
    if (st.has_admin_listener) {
        try {
            impl_->listen(impl_->admin, tcp::endpoint(st.admin_address, st.admin_port),
                          "admin " + st.config.admin_listen);
        } catch (...) {
            impl_->data.socket.reset();
            impl_->data.retry.reset();
            throw;
        }
    }
    impl_->next_worker = 0;
    st.draining = false;
    st.control.start();
    st.names.start();
    for (auto& w : impl_->workers) w->start();
    asio::post(first, [impl = impl_.get()] {
        impl->do_accept(impl->data);
        if (impl->admin.socket) impl->do_accept(impl->admin);
    });
    impl_->running = true;
}

void Router::stop() {
    std::lock_guard lock(impl_->lifecycle);
    if (!impl_->running) return;
    if (impl_->on_own_thread()) {
        throw std::logic_error("Router::stop() cannot run on one of the router's own threads");
    }
    auto& st = impl_->state;
    auto& workers = impl_->workers;
    // 1. No new connections.
    run_on(workers.front()->ioc(), [impl = impl_.get()] { impl->close_acceptors(); });
    // 2. Idle connections close now; busy ones after their response.
    st.draining = true;
    for (auto& w : workers) run_on(w->ioc(), [&w] { w->drain_sessions(); });
    // 3. Wait for the requests in flight, as long as an upstream answer may take.
    const RouterLimits limits = st.live_limits();
    const auto deadline = std::chrono::steady_clock::now() + limits.upstream_timeout +
                          limits.connect_timeout + std::chrono::milliseconds(200);
    while (st.connections.load() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (auto& w : workers) run_on(w->ioc(), [&w] { w->close_sessions(); });
    // 4. Join the I/O threads, then the control worker (its queued jobs are
    // dropped here, after no I/O thread can touch their sessions).
    for (auto& w : workers) w->join();
    st.control.stop();
    st.names.stop();
    for (auto& w : workers) w->clear_pools();
    for (auto* a : {&impl_->data, &impl_->admin}) {
        a->socket.reset();
        a->retry.reset();
    }
    impl_->running = false;
}

bool Router::running() const noexcept { return impl_->running.load(); }

std::uint16_t Router::port() const noexcept { return impl_->data.port.load(); }

std::uint16_t Router::admin_port() const noexcept { return impl_->admin.port.load(); }

std::size_t Router::min_replicas() const noexcept { return impl_->state.limits.min; }

std::size_t Router::max_replicas() const noexcept { return impl_->state.limits.max; }

unsigned Router::threads() const noexcept { return impl_->state.threads.cpus; }

const std::string& Router::threads_reason() const noexcept { return impl_->state.threads.reason; }

const RouterConfig& Router::config() const noexcept { return impl_->state.config; }

RouterLimits Router::limits() const { return impl_->state.live_limits(); }

void Router::reconfigure(const RouterLimits& limits) {
    std::lock_guard lock(impl_->lifecycle);
    if (impl_->on_own_thread()) {
        throw std::logic_error("Router::reconfigure() cannot run on one of the router's own threads");
    }
    impl_->state.set_live_limits(limits);  // checks them: nothing changes when one is off
    // Each I/O thread swaps its own copy, so that requests read theirs
    // without a lock; stopped threads (not started, or stopped) are not
    // running anything that could read it.
    for (auto& w : impl_->workers) {
        if (impl_->running) run_on(w->ioc(), [&w, &limits] { w->set_limits(limits); });
        else w->set_limits(limits);
    }
}

ReplicaSet& Router::replicas() noexcept { return impl_->state.replicas; }

EventLog& Router::events() noexcept { return impl_->state.events; }

boost::asio::any_io_executor Router::executor() noexcept {
    return impl_->workers.front()->ioc().get_executor();
}

void Router::set_control_handler(ControlHandler handler) {
    impl_->state.set_control_handler(std::move(handler));
}

void Router::set_failure_listener(FailureListener listener) {
    impl_->state.set_failure_listener(std::move(listener));
}

void Router::set_health_source(HealthSource source) {
    impl_->state.set_health_source(std::move(source));
}

RouterStats Router::stats() const noexcept { return impl_->state.totals(); }

std::vector<ReplicaStats> Router::replica_stats() const { return impl_->state.replica_stats(); }

}  // namespace ringlb
