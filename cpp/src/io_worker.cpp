#include "ringlb/io_worker.hpp"

#include <algorithm>
#include <vector>

#include "ringlb/bounded_load.hpp"
#include "ringlb/proxy_session.hpp"

namespace ringlb {

IoWorker::IoWorker(RouterState& state, unsigned index)
    : state_(state), index_(index),
      // One thread runs this context: concurrency hint 1 lets Asio skip waking
      // other threads and keep handler queues thread-private.
      ioc_(std::make_unique<boost::asio::io_context>(1)),
      limits_(state.live_limits()), deadlines_(*ioc_),
      rng_(std::random_device{}() ^ (static_cast<std::uint64_t>(index) << 32)) {}

void IoWorker::set_limits(const RouterLimits& next) {
    const bool new_pools = next.max_idle_upstream != limits_.current().max_idle_upstream;
    limits_.publish(next);
    // A session in flight keeps its pool (through its route table) and gives
    // its connection back there; the pool goes with the last such session.
    if (new_pools) clear_pools();
}

IoWorker::~IoWorker() {
    join();
    clear_pools();
    // The queue's timer goes before the io_context it belongs to; the
    // sessions the context's handlers own then leave their lanes as they go.
    deadlines_.shutdown();
    ioc_.reset();  // destroys pending handlers (and the sessions they own) first
}

void IoWorker::start() {
    if (thread_.joinable()) return;
    if (ioc_->stopped()) ioc_->restart();
    work_.emplace(ioc_->get_executor());
    thread_ = std::thread([this] { ioc_->run(); });
    thread_id_.store(thread_.get_id());
}

void IoWorker::join() {
    work_.reset();
    ioc_->stop();
    if (thread_.joinable()) thread_.join();
    thread_id_.store(std::thread::id());
}

bool IoWorker::on_thread() const noexcept {
    return thread_id_.load() == std::this_thread::get_id();
}

const std::shared_ptr<const RouteTable>& IoWorker::routes() {
    if (routes_ && state_.replicas.version() == routes_version_) return routes_;
    auto snap = state_.replicas.snapshot();
    auto table = std::make_shared<RouteTable>();
    std::unordered_map<std::uint32_t, std::shared_ptr<UpstreamPool>> next;
    for (const auto& r : snap->registered) {
        std::shared_ptr<UpstreamPool> pool;
        const auto it = pools_.find(r->id);
        if (it != pools_.end() && it->second->hostname() == r->hostname) {
            pool = it->second;
            if (!pool->same_endpoint(*r)) pool->set_endpoint(*r);
        } else {
            pool = std::make_shared<UpstreamPool>(*ioc_, *r, limits_.current().max_idle_upstream,
                                                  state_.counters_for(r->id, r->hostname), index_);
        }
        next.emplace(r->id, std::move(pool));
    }
    table->pools.reserve(snap->ring->members().size());
    for (const auto& m : snap->ring->members()) table->pools.push_back(next.at(m.id));
    routes_version_ = snap->version;
    table->snap = std::move(snap);
    pools_ = std::move(next);  // pools of unregistered replicas go once no request holds them
    routes_ = std::move(table);
    return routes_;
}

std::size_t IoWorker::plan(const RouteTable& table, std::uint64_t request_id,
                           std::span<std::size_t> out, bool complete) {
    const HashRing& ring = *table.snap->ring;
    const std::size_t n = ring.members().size();
    if (n == 0 || out.empty()) return 0;
    const double c = limits_.current().bounded_load;
    if (c == 0.0 && !complete) {
        out[0] = ring.lookup(request_id);
        return 1;
    }
    if (c == 0.0) return ring.candidates(request_id, out);
    // Bounded loads need the whole order: the first replica under the cap
    // may be any of them. It is the random jump's order, so that a hot
    // replica's overflow spreads over the others instead of landing on its
    // clockwise neighbour (HashRing::Walk::jump). The scratch keeps its
    // capacity: no allocation once it has held N.
    all_candidates_.resize(n);
    const std::size_t k = ring.candidates(request_id, all_candidates_, HashRing::Walk::jump);
    const std::span<const std::size_t> cands(all_candidates_.data(), k);
    const std::size_t pick = bounded_load_pick(
        cands,
        [&table](std::size_t idx) noexcept {
            return table.pools[idx]->counters().in_flight.load(std::memory_order_relaxed);
        },
        state_.total_in_flight.load(std::memory_order_relaxed), n, c);
    std::size_t written = 0;
    out[written++] = pick;
    for (const std::size_t idx : cands) {
        if (written == out.size()) break;
        if (idx != pick) out[written++] = idx;
    }
    return written;
}

namespace {

// The sessions now, as a copy: closing one may end it (and unlink it).
template <class List>
std::vector<ProxySession*> snapshot(List& sessions) {
    std::vector<ProxySession*> all;
    for (auto& link : sessions) all.push_back(static_cast<ProxySession*>(&link));
    return all;
}

}  // namespace

void IoWorker::drain_sessions() {
    for (auto* s : snapshot(sessions_)) s->shutdown();
}

void IoWorker::close_sessions() {
    for (auto* s : snapshot(sessions_)) s->close();
}

void IoWorker::clear_pools() {
    routes_.reset();
    routes_version_ = 0;
    for (auto& [id, pool] : pools_) pool->clear();
    pools_.clear();
}

}  // namespace ringlb
