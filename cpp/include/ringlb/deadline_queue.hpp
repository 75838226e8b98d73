// DeadlineQueue: the deadlines of one I/O thread's connections, kept by one
// timer for the whole thread instead of one per connection.
//
// A per-connection Asio timer costs ~72 bytes in the connection and ~100 more
// for the wait it keeps pending, for every idle keep-alive connection; that
// was a fifth of what one cost the router (bench/proxy.py's idle table).
//
// Deadlines are only ever "now + one of a few timeouts" (header, idle,
// connect, upstream, linger), so the queue keeps one FIFO list per timeout,
// a "lane": a deadline joins the back of its lane, and since the (coarse,
// steady) clock never goes back, each lane stays ordered by deadline with no
// sorting. Moving a deadline is an unlink and a push_back, O(1); the timer
// is armed for the earliest lane front. This is libev's advice for many
// timers of one length (its "be smart about timeouts", strategy 4) and what
// Linux's timer wheels approximate; a heap would cost O(log n) per step.
//
// A live reload that changes a timeout starts a new lane; once there are
// eight, empty ones are dropped when another is needed, so there stay few.
//
// Single thread: the I/O thread that owns the io_context, like everything a
// worker owns.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

namespace ringlb {

class DeadlineQueue;

// Something with a deadline (a connection): derive from it and implement
// expired(), which the queue calls once, on the I/O thread, when the deadline
// passes. A Deadline destroyed while scheduled leaves its lane by itself.
class Deadline {
public:
    using Clock = std::chrono::steady_clock;
    bool scheduled() const noexcept { return hook_.is_linked(); }
    Clock::time_point at() const noexcept { return at_; }

protected:
    Deadline() = default;
    ~Deadline() = default;
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;
    virtual void expired() = 0;

private:
    friend class DeadlineQueue;
    boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>
        hook_;
    Clock::time_point at_{};
};

class DeadlineQueue {
public:
    using Clock = Deadline::Clock;

    explicit DeadlineQueue(boost::asio::io_context& ioc);
    DeadlineQueue(const DeadlineQueue&) = delete;
    DeadlineQueue& operator=(const DeadlineQueue&) = delete;

    // `d` expires `timeout` from now (CoarseClock), replacing any deadline it had.
    void schedule(Deadline& d, std::chrono::milliseconds timeout);
    // `d` has no deadline any more.
    static void cancel(Deadline& d) noexcept { d.hook_.unlink(); }
    // Destroys the timer; call before the io_context goes (scheduled
    // deadlines may still be cancelled or destroyed after).
    void shutdown() noexcept;

    std::size_t size() const noexcept;
    std::size_t lanes() const noexcept { return lanes_.size(); }

private:
    using Hook = decltype(Deadline::hook_);
    using List = boost::intrusive::list<
        Deadline, boost::intrusive::member_hook<Deadline, Hook, &Deadline::hook_>,
        boost::intrusive::constant_time_size<false>>;
    using Timer = boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>,
                                                    boost::asio::io_context::executor_type>;
    struct Lane {
        std::chrono::milliseconds timeout;
        List list;
    };

    List& lane(std::chrono::milliseconds timeout);
    void arm(Clock::time_point at);
    void on_timer();

    // Lanes are few (one per distinct timeout) and searched in order; the
    // vector holds pointers so that a lane's list never moves.
    std::vector<std::unique_ptr<Lane>> lanes_;
    static constexpr std::size_t max_lanes = 8;
    bool sweeping_ = false;  // on_timer is walking the lanes
    std::optional<Timer> timer_;
    Clock::time_point armed_at_ = Clock::time_point::max();  // max: no wait pending
};

}  // namespace ringlb
