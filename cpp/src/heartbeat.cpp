#include "ringlb/heartbeat.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace ringlb {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Strand = asio::strand<asio::any_io_executor>;
using std::chrono::microseconds;

const char* to_string(Health health) noexcept {
    switch (health) {
        case Health::up: return "up";
        case Health::suspect: return "suspect";
        case Health::down: return "down";
    }
    return "unknown";
}

namespace {

// ringlb-replica's /heartbeat answer is empty, but a service's health path
// may be a whole page: beyond this the status decides and the connection
// is closed rather than read to the end.
constexpr std::uint64_t kMaxResponseBody = 64 * 1024;
// How often the engine looks for membership changes it was not told about.
constexpr std::chrono::milliseconds kMaxPoll{50};

std::string format_ms(microseconds us) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(us.count()) / 1000.0);
    return buf;
}

}  // namespace

struct HeartbeatEngine::Impl : std::enable_shared_from_this<Impl> {
    enum class Phase { created, running, stopped };
    class Probe;

    Impl(asio::any_io_executor executor, ReplicaSet& set, HeartbeatConfig cfg, EventLog* log)
        : strand(asio::make_strand(executor)), replicas(set), event_log(log), config(cfg),
          poll_timer(strand) {}

    ~Impl() {
        // Joined by stop() except when stop() ran on the notifier thread itself.
        if (notifier.joinable()) notifier.detach();
    }

    void start();
    void stop();
    void sync(bool force);
    void schedule_poll();
    void shutdown();
    void on_failure(std::uint32_t id);
    void drain_failures();
    // Every tracked replica, by ascending id. Any thread.
    std::vector<ReplicaHealth> states() const {
        std::lock_guard lock(mutex);
        std::vector<ReplicaHealth> out;
        out.reserve(health.size());
        for (const auto& [id, h] : health) out.push_back(h);
        return out;
    }
    void on_probe_result(const Probe* probe, bool ok, microseconds latency, const std::string& detail);
    void notify_loop();

    // Precondition for the three below: mutex held, health entry exists.
    void record_success(ReplicaHealth& h, microseconds latency);
    void record_miss(ReplicaHealth& h, const std::string& detail);
    void transition(ReplicaHealth& h, Health to, std::string detail);
    bool set_serving(ReplicaHealth& h, bool serving);

    Strand strand;
    ReplicaSet& replicas;
    EventLog* const event_log;  // may be null
    const HeartbeatConfig config;
    std::atomic<Phase> phase{Phase::created};

    // Strand only.
    std::map<std::uint32_t, std::shared_ptr<Probe>> probes;
    std::uint64_t seen_version = 0;
    bool synced = false;
    asio::steady_timer poll_timer;

    // Guarded by mutex. Never held while calling the listener or anything
    // that may take the GIL.
    mutable std::mutex mutex;
    std::map<std::uint32_t, ReplicaHealth> health;
    // Replicas with a counted passive failure whose confirming probe has not
    // answered yet: further failures of the same burst do not count again.
    std::set<std::uint32_t> awaiting_probe;
    std::deque<HealthEvent> events;
    HealthListener listener;
    std::condition_variable wake;
    std::thread notifier;

    // Passive failures waiting for the strand; coalesced so that a burst of
    // failed requests posts one task, not one per request.
    std::mutex failure_mutex;
    std::vector<std::uint32_t> pending_failures;
    bool failure_task_posted = false;
};

// One replica's probe loop: connect once, then GET /heartbeat on the same
// keep-alive connection every interval. Lives on the engine's strand; every
// handler holds it through shared_from_this, and close() makes the pending
// ones return without effect.
class HeartbeatEngine::Impl::Probe : public std::enable_shared_from_this<Probe> {
public:
    Probe(std::weak_ptr<HeartbeatEngine::Impl> owner, const Strand& strand, const Replica& r,
          const HeartbeatConfig& config)
        : owner_(std::move(owner)),
          id_(r.id),
          interval_(config.interval),
          timeout_(config.timeout),
          stream_(strand),
          wait_(strand) {
        beast::error_code ec;
        const auto address = asio::ip::make_address(r.host, ec);
        if (r.host.empty()) bad_address_ = "no address yet: its name '" + r.name + "' resolves";
        else if (ec) bad_address_ = "bad address '" + r.host + "'";
        else endpoint_ = tcp::endpoint(address, r.port);
        req_.method(http::verb::get);
        req_.target(config.path);
        req_.version(11);
        req_.set(http::field::host, r.host + ":" + std::to_string(r.port));
        req_.set(http::field::user_agent, "ringlb-heartbeat");
        req_.keep_alive(true);
    }

    std::uint32_t id() const noexcept { return id_; }

    void start() { probe(); }

    void close() {
        closed_ = true;
        close_socket();
        wait_.cancel();
    }

    // Probe now if waiting for the next interval; a probe in flight reports
    // soon anyway.
    void kick() {
        if (waiting_ && !closed_) wait_.cancel();
    }

private:
    void probe() {
        if (closed_) return;
        waiting_ = false;
        started_ = Clock::now();
        if (!bad_address_.empty()) return finish(false, bad_address_);
        // One deadline for the whole probe, connect included.
        stream_.expires_after(timeout_);
        reused_ = stream_.socket().is_open();
        if (reused_) do_write();
        else do_connect();
    }

    void do_connect() {
        stream_.async_connect(endpoint_,
                              beast::bind_front_handler(&Probe::on_connect, shared_from_this()));
    }

    void on_connect(beast::error_code ec) {
        if (closed_) return;
        if (ec) return fail("connect", ec);
        stream_.socket().set_option(tcp::no_delay(true), ec);
        do_write();
    }

    void do_write() {
        http::async_write(stream_, req_,
                          beast::bind_front_handler(&Probe::on_write, shared_from_this()));
    }

    void on_write(beast::error_code ec, std::size_t) {
        if (closed_) return;
        if (ec) return fail("send", ec);
        parser_.emplace();
        parser_->body_limit(kMaxResponseBody);
        http::async_read(stream_, buffer_, *parser_,
                         beast::bind_front_handler(&Probe::on_read, shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (closed_) return;
        const bool too_long = ec == http::error::body_limit && parser_->is_header_done();
        if (ec && !too_long) return fail("receive", ec);
        const auto& res = parser_->get();
        const unsigned status = res.result_int();
        if (too_long || !res.keep_alive()) close_socket();
        if (status < 200 || status > 399) return finish(false, "HTTP " + std::to_string(status));
        finish(true, {});
    }

    void fail(const char* what, beast::error_code ec) {
        close_socket();
        // A kept-alive connection may have been closed by the replica between
        // two probes (its idle timeout, say): that says nothing about its
        // health, so try once more on a fresh connection within the same
        // deadline before counting a miss.
        if (reused_ && ec != beast::error::timeout) {
            reused_ = false;
            return do_connect();
        }
        std::string detail = std::string(what) + ": ";
        if (ec == beast::error::timeout) {
            detail += "timed out after " + std::to_string(timeout_.count()) + " ms";
        } else {
            detail += ec.message();
        }
        finish(false, detail);
    }

    void finish(bool ok, const std::string& detail) {
        const auto latency = std::chrono::duration_cast<microseconds>(Clock::now() - started_);
        if (auto owner = owner_.lock()) owner->on_probe_result(this, ok, latency, detail);
        if (closed_) return;
        waiting_ = true;
        wait_.expires_at(started_ + interval_);
        wait_.async_wait(beast::bind_front_handler(&Probe::on_wait, shared_from_this()));
    }

    // Cancelled by kick() or close(): close() sets closed_ first.
    void on_wait(beast::error_code) { probe(); }

    void close_socket() {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream_.socket().close(ignored);
        buffer_.clear();
    }

    std::weak_ptr<HeartbeatEngine::Impl> owner_;
    const std::uint32_t id_;
    const std::chrono::milliseconds interval_;
    const std::chrono::milliseconds timeout_;
    tcp::endpoint endpoint_;
    std::string bad_address_;
    beast::tcp_stream stream_;
    asio::steady_timer wait_;
    beast::flat_buffer buffer_;
    http::request<http::empty_body> req_;
    std::optional<http::response_parser<http::string_body>> parser_;
    Clock::time_point started_;
    bool reused_ = false;
    bool waiting_ = false;
    bool closed_ = false;
};

void HeartbeatEngine::Impl::start() {
    {
        std::lock_guard lock(mutex);
        if (phase.load() != Phase::created) {
            throw std::logic_error("HeartbeatEngine::start: an engine is started only once");
        }
        phase = Phase::running;
        notifier = std::thread([self = shared_from_this()] { self->notify_loop(); });
    }
    asio::post(strand, [self = shared_from_this()] {
        self->sync(true);
        self->schedule_poll();
    });
}

void HeartbeatEngine::Impl::stop() {
    {
        std::lock_guard lock(mutex);
        if (phase.load() != Phase::running) {
            phase = Phase::stopped;
            return;
        }
        phase = Phase::stopped;
    }
    wake.notify_all();
    asio::post(strand, [self = shared_from_this()] { self->shutdown(); });
    if (notifier.get_id() == std::this_thread::get_id()) notifier.detach();
    else notifier.join();
    // Release the listener here, in the caller's thread, rather than wherever
    // the last handler holding this Impl happens to finish (an I/O thread).
    HealthListener released;
    std::lock_guard lock(mutex);
    std::swap(released, listener);
}

void HeartbeatEngine::Impl::shutdown() {
    for (auto& [id, probe] : probes) probe->close();
    probes.clear();
    poll_timer.cancel();
}

void HeartbeatEngine::Impl::schedule_poll() {
    poll_timer.expires_after(std::min(config.interval, kMaxPoll));
    poll_timer.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (ec || self->phase.load() != Phase::running) return;
        self->sync(false);
        self->schedule_poll();
    });
}

void HeartbeatEngine::Impl::sync(bool force) {
    if (phase.load() != Phase::running) return;
    const auto snap = replicas.snapshot();
    if (synced && !force && snap->version == seen_version) return;
    synced = true;
    seen_version = snap->version;

    std::set<std::uint32_t> serving;
    for (const auto& r : snap->serving) serving.insert(r->id);
    std::set<std::uint32_t> present;
    std::vector<std::shared_ptr<Probe>> fresh_probes;
    {
        std::lock_guard lock(mutex);
        if (phase.load() != Phase::running) return;
        for (const auto& r : snap->registered) {
            present.insert(r->id);
            auto it = health.find(r->id);
            if (it == health.end() || it->second.hostname != r->hostname) {
                // A new replica (or a new one under a reused id): trust the
                // ring for its starting state; probes correct it within `fall`.
                ReplicaHealth h;
                h.id = r->id;
                h.hostname = r->hostname;
                h.host = r->host;
                h.port = r->port;
                h.state = serving.count(r->id) ? Health::up : Health::down;
                health[r->id] = std::move(h);
            } else if (it->second.host != r->host || it->second.port != r->port) {
                // A replacement on a new endpoint: its record starts over,
                // and a down one must rise again before it serves.
                auto& h = it->second;
                h.host = r->host;
                h.port = r->port;
                h.misses = 0;
                h.successes = 0;
                h.last_latency.reset();
                h.last_error.clear();
                // A DNS name's first address put it on the ring
                // (ReplicaSet::set_address): judged from there, as a new one.
                if (h.state == Health::down && serving.count(r->id)) h.state = Health::up;
            } else {
                continue;
            }
            if (auto p = probes.find(r->id); p != probes.end()) p->second->close();
            auto probe = std::make_shared<Probe>(weak_from_this(), strand, *r, config);
            probes[r->id] = probe;
            fresh_probes.push_back(std::move(probe));
        }
        for (auto it = health.begin(); it != health.end();) {
            if (present.count(it->first)) {
                ++it;
                continue;
            }
            if (auto p = probes.find(it->first); p != probes.end()) {
                p->second->close();
                probes.erase(p);
            }
            awaiting_probe.erase(it->first);
            it = health.erase(it);
        }
    }
    for (auto& p : fresh_probes) p->start();
}

void HeartbeatEngine::Impl::on_failure(std::uint32_t id) {
    if (phase.load(std::memory_order_relaxed) != Phase::running) return;
    {
        std::lock_guard lock(failure_mutex);
        if (std::find(pending_failures.begin(), pending_failures.end(), id) == pending_failures.end()) {
            pending_failures.push_back(id);
        }
        if (failure_task_posted) return;
        failure_task_posted = true;
    }
    asio::post(strand, [self = shared_from_this()] { self->drain_failures(); });
}

void HeartbeatEngine::Impl::drain_failures() {
    std::vector<std::uint32_t> ids;
    {
        std::lock_guard lock(failure_mutex);
        ids.swap(pending_failures);
        failure_task_posted = false;
    }
    for (auto id : ids) {
        auto probe = probes.find(id);
        if (probe == probes.end()) continue;
        {
            std::lock_guard lock(mutex);
            if (phase.load() != Phase::running) return;
            auto h = health.find(id);
            if (h == health.end() || h->second.state == Health::down) continue;
            if (!awaiting_probe.insert(id).second) continue;  // same burst, probe on its way
            ++h->second.passive_failures;
            record_miss(h->second, "passive: forwarding a request failed");
        }
        // Confirm or clear the failure now rather than at the next interval.
        probe->second->kick();
    }
}

void HeartbeatEngine::Impl::on_probe_result(const Probe* probe, bool ok, microseconds latency,
                                            const std::string& detail) {
    auto current = probes.find(probe->id());
    if (current == probes.end() || current->second.get() != probe) return;  // superseded
    std::lock_guard lock(mutex);
    if (phase.load() != Phase::running) return;
    awaiting_probe.erase(probe->id());
    auto h = health.find(probe->id());
    if (h == health.end()) return;
    ++h->second.checks;
    if (ok) record_success(h->second, latency);
    else record_miss(h->second, detail);
}

void HeartbeatEngine::Impl::record_success(ReplicaHealth& h, microseconds latency) {
    h.last_latency = latency;
    h.misses = 0;
    ++h.successes;
    if (h.state == Health::suspect) {
        transition(h, Health::up, "heartbeat ok again in " + format_ms(latency));
    } else if (h.state == Health::down && h.successes >= config.rise) {
        if (!set_serving(h, true)) return;
        transition(h, Health::up,
                   "rise " + std::to_string(h.successes) + "/" + std::to_string(config.rise) +
                       ": heartbeat ok in " + format_ms(latency));
    }
}

void HeartbeatEngine::Impl::record_miss(ReplicaHealth& h, const std::string& detail) {
    h.successes = 0;
    ++h.misses;
    h.last_error = detail;
    if (h.state == Health::down) return;
    const std::string count = std::to_string(h.misses) + "/" + std::to_string(config.fall);
    if (h.misses >= config.fall) {
        set_serving(h, false);
        transition(h, Health::down, "fall " + count + ": " + detail);
    } else if (h.state == Health::up) {
        transition(h, Health::suspect, "miss " + count + ": " + detail);
    }
}

bool HeartbeatEngine::Impl::set_serving(ReplicaHealth& h, bool serving) {
    try {
        replicas.set_serving(h.id, serving);  // false when already so: nothing to do
        return true;
    } catch (const std::exception& e) {
        // Only a rejoin can fail (the ring filled up meanwhile); the replica
        // stays down and the next success tries again. Never throw into the
        // router's I/O threads.
        h.last_error = std::string("cannot rejoin the ring: ") + e.what();
        return false;
    }
}

void HeartbeatEngine::Impl::transition(ReplicaHealth& h, Health to, std::string detail) {
    if (event_log) {
        // Recorded here, when it happens, rather than by the listener: the
        // router's log then has it even with no listener or a slow one.
        const EventKind kind = to == Health::up     ? EventKind::up
                               : to == Health::down ? EventKind::down
                                                    : EventKind::suspect;
        event_log->record(kind, h.id, h.hostname,
                          std::string(to_string(h.state)) + " -> " + to_string(to) + ": " + detail);
    }
    events.push_back(HealthEvent{h.id, h.hostname, h.state, to, std::move(detail)});
    h.state = to;
    wake.notify_one();
}

void HeartbeatEngine::Impl::notify_loop() {
    std::unique_lock lock(mutex);
    for (;;) {
        wake.wait(lock, [this] { return phase.load() != Phase::running || !events.empty(); });
        if (phase.load() != Phase::running) return;
        HealthEvent event = std::move(events.front());
        events.pop_front();
        HealthListener fn = listener;
        lock.unlock();
        if (fn) {
            try {
                fn(event);
            } catch (...) {
                // A listener's failure must not stop the delivery of the next events.
            }
        }
        fn = nullptr;  // released outside the lock: it may hold a Python object
        lock.lock();
    }
}

void check_health_path(const std::string& path) {
    bool ok = !path.empty() && path.front() == '/' && path.size() <= 1024;
    for (const char c : path) {
        const auto u = static_cast<unsigned char>(c);
        ok = ok && u > 0x20 && u < 0x7f;
    }
    if (!ok) {
        throw std::invalid_argument("health path '" + path +
                                    "' must start with '/' and hold no space or control "
                                    "character (at most 1024 bytes)");
    }
}

HeartbeatEngine::HeartbeatEngine(asio::any_io_executor executor, ReplicaSet& replicas,
                                 HeartbeatConfig config, EventLog* events) {
    if (config.interval.count() <= 0) {
        throw std::invalid_argument("heartbeat interval must be positive");
    }
    if (config.timeout.count() <= 0) {
        throw std::invalid_argument("heartbeat timeout must be positive");
    }
    if (config.fall == 0) throw std::invalid_argument("fall must be at least 1");
    if (config.rise == 0) throw std::invalid_argument("rise must be at least 1");
    check_health_path(config.path);
    impl_ = std::make_shared<Impl>(std::move(executor), replicas, config, events);
}

HeartbeatEngine::~HeartbeatEngine() { stop(); }

void HeartbeatEngine::start() { impl_->start(); }

void HeartbeatEngine::stop() { impl_->stop(); }

bool HeartbeatEngine::running() const noexcept {
    return impl_->phase.load() == Impl::Phase::running;
}

void HeartbeatEngine::on_failure(std::uint32_t id) { impl_->on_failure(id); }

std::function<void(std::uint32_t)> HeartbeatEngine::failure_listener() const {
    return [weak = std::weak_ptr<Impl>(impl_)](std::uint32_t id) {
        if (auto impl = weak.lock()) impl->on_failure(id);
    };
}

std::function<std::vector<ReplicaHealth>()> HeartbeatEngine::health_source() const {
    return [weak = std::weak_ptr<Impl>(impl_)]() -> std::vector<ReplicaHealth> {
        const auto impl = weak.lock();
        return impl ? impl->states() : std::vector<ReplicaHealth>{};
    };
}

void HeartbeatEngine::refresh() {
    if (impl_->phase.load() != Impl::Phase::running) return;
    asio::post(impl_->strand, [self = impl_] { self->sync(true); });
}

void HeartbeatEngine::set_listener(HealthListener listener) {
    {
        std::lock_guard lock(impl_->mutex);
        std::swap(impl_->listener, listener);
    }
    // The previous listener dies here, outside the lock.
}

std::vector<ReplicaHealth> HeartbeatEngine::states() const { return impl_->states(); }

const HeartbeatConfig& HeartbeatEngine::config() const noexcept { return impl_->config; }

}  // namespace ringlb
