#include "ringlb/deadline_queue.hpp"

#include <algorithm>

#include "ringlb/coarse_clock.hpp"

namespace ringlb {

DeadlineQueue::DeadlineQueue(boost::asio::io_context& ioc) { timer_.emplace(ioc.get_executor()); }

void DeadlineQueue::shutdown() noexcept {
    timer_.reset();
    armed_at_ = Clock::time_point::max();
}

std::size_t DeadlineQueue::size() const noexcept {
    std::size_t n = 0;
    for (const auto& lane : lanes_) n += lane->list.size();
    return n;
}

DeadlineQueue::List& DeadlineQueue::lane(std::chrono::milliseconds timeout) {
    for (auto& l : lanes_) {
        if (l->timeout == timeout) return l->list;
    }
    // A timeout not seen before. There are five in use at a time; past that,
    // reloads changed some, and lanes nobody is in any more go first (not
    // while on_timer walks them).
    if (lanes_.size() >= max_lanes && !sweeping_) {
        std::erase_if(lanes_, [](const auto& l) { return l->list.empty(); });
    }
    lanes_.push_back(std::make_unique<Lane>(Lane{timeout, {}}));
    return lanes_.back()->list;
}

void DeadlineQueue::schedule(Deadline& d, std::chrono::milliseconds timeout) {
    d.hook_.unlink();
    d.at_ = CoarseClock::now() + timeout;
    lane(timeout).push_back(d);
    // The pending wait is for the earliest deadline there was; only an
    // earlier one needs it moved. A later lane front (its first deadline
    // moved back) only makes the wait end early, and on_timer re-arms.
    if (d.at_ < armed_at_) arm(d.at_);
}

void DeadlineQueue::arm(Clock::time_point at) {
    if (!timer_) return;  // shut down
    armed_at_ = at;
    timer_->expires_at(at);  // cancels a wait in progress: its handler sees operation_aborted
    timer_->async_wait([this](const boost::system::error_code& ec) {
        if (ec == boost::asio::error::operation_aborted) return;  // re-armed, or shut down
        armed_at_ = Clock::time_point::max();
        on_timer();
    });
}

void DeadlineQueue::on_timer() {
    // The precise clock here: the coarse one may still read a little before
    // the time the wait was armed for.
    const auto now = Clock::now();
    auto next = Clock::time_point::max();
    sweeping_ = true;
    for (std::size_t i = 0; i < lanes_.size(); ++i) {
        List& list = lanes_[i]->list;
        while (!list.empty() && list.front().at_ <= now) {
            Deadline& d = list.front();
            list.pop_front();
            // May schedule or cancel deadlines, in any lane; a new lane may
            // be added, but none removed while sweeping_ (lanes do not move).
            d.expired();
        }
        if (!list.empty()) next = std::min(next, list.front().at_);
    }
    sweeping_ = false;
    if (next < armed_at_) arm(next);
}

}  // namespace ringlb
