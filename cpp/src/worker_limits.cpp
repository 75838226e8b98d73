#include "ringlb/worker_limits.hpp"

#include <utility>

namespace ringlb {

WorkerLimits::Lease::Lease(Version* v) noexcept : v_(v) { ++v_->leases; }

WorkerLimits::Lease& WorkerLimits::Lease::operator=(Lease&& other) noexcept {
    if (this != &other) {
        release();
        v_ = std::exchange(other.v_, nullptr);
    }
    return *this;
}

void WorkerLimits::Lease::release() noexcept {
    if (!v_) return;
    if (--v_->leases == 0 && v_->retired) delete v_;
    v_ = nullptr;
}

WorkerLimits::WorkerLimits(const RouterLimits& initial) : current_(new Version{initial}) {}

WorkerLimits::~WorkerLimits() {
    // Leases end before their worker (its sessions go with its io_context);
    // one that did not would free the version itself.
    current_->retired = true;
    if (current_->leases == 0) delete current_;
}

void WorkerLimits::publish(const RouterLimits& next) {
    auto* fresh = new Version{next};
    current_->retired = true;
    if (current_->leases == 0) delete current_;
    current_ = fresh;
}

}  // namespace ringlb
