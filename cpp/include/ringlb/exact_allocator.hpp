// ExactAllocator: gives a completion handler an associated allocator that
// allocates exactly what its operation needs, from the heap.
//
// Asio allocates an operation for each pending wait, by default through a
// per-thread recycling cache that hands back the last freed block when it is
// large enough; on the request path that is a write or accept operation, so
// each wait an idle connection keeps pending (readable; there was a timer too) sat in a
// ~250-byte block (measured with massif: ~500 bytes per idle connection).
// A handler wrapped here gets a block of its own operation's size instead.
// Only for waits that may stay pending a long time: the hot path's
// short-lived operations keep the cache, which saves a malloc each.
#pragma once

#include <boost/asio/associated_executor.hpp>

#include <cstddef>
#include <new>
#include <utility>

namespace ringlb {

template <class T>
struct ExactAllocator {
    using value_type = T;
    ExactAllocator() noexcept = default;
    template <class U>
    ExactAllocator(const ExactAllocator<U>&) noexcept {}  // NOLINT: rebinding is implicit
    T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
    void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
    template <class U>
    bool operator==(const ExactAllocator<U>&) const noexcept { return true; }
};

// `handler`, with ExactAllocator as its associated allocator.
template <class Handler>
struct ExactAllocHandler {
    Handler handler;
    using allocator_type = ExactAllocator<void>;
    allocator_type get_allocator() const noexcept { return {}; }
    template <class... Args>
    void operator()(Args&&... args) {
        std::move(handler)(std::forward<Args>(args)...);
    }
};

template <class Handler>
ExactAllocHandler<std::decay_t<Handler>> exact_alloc(Handler&& handler) {
    return {std::forward<Handler>(handler)};
}

}  // namespace ringlb
