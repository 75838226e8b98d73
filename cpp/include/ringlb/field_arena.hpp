// FieldArena and FieldAllocator: recycled memory for the header fields of
// the messages an I/O thread's proxy sessions handle.
//
// Beast's basic_fields allocates every field separately, and a request's
// target or a response's reason too: a proxied request cost 7 malloc/free
// pairs (counted with a uprobe on malloc), all of them there. A session
// holds one request and one answer at a time and their fields have the same
// sizes from one request to the next, so blocks freed by one message are
// kept on free lists by size class and handed to the next: after the first
// request on a connection, its fields take nothing from the heap.
//
// Header-only: it sits on the router's hot path, and the replica's copy of
// WireFormat instantiates it too. Single-threaded: the router has one per
// IoWorker, shared by that thread's sessions, so an idle connection gives its
// fields back and holds none (HAProxy's per-thread pools do the same). What it
// keeps is bounded (max_kept_bytes); larger blocks and blocks beyond that go
// back to the heap. A default-constructed FieldAllocator has no arena and
// uses the heap, so messages built without one still work.
#pragma once

#include <array>
#include <cstddef>
#include <new>
#include <type_traits>

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace ringlb {

class FieldArena {
public:
    static constexpr std::size_t granule = 32;        // size classes are multiples of this
    static constexpr std::size_t classes = 16;        // so blocks up to 512 bytes are kept
    static constexpr std::size_t max_kept_bytes = 8192;  // the default bound

    // `kept_limit`: bytes of free blocks kept for reuse (an IoWorker's arena,
    // shared by all its sessions, keeps more than one message's worth).
    explicit FieldArena(std::size_t kept_limit = max_kept_bytes) noexcept
        : kept_limit_(kept_limit) {}
    ~FieldArena() {
        for (Block* b : free_) {
            while (b) {
                Block* next = b->next;
                ::operator delete(b);
                b = next;
            }
        }
    }
    FieldArena(const FieldArena&) = delete;
    FieldArena& operator=(const FieldArena&) = delete;

    // Memory for `bytes`, aligned for any fundamental type. Throws
    // std::bad_alloc as operator new does.
    void* allocate(std::size_t bytes) {
        const std::size_t c = class_of(bytes);
        if (c < classes) {
            if (Block* b = free_[c]) {
                free_[c] = b->next;
                kept_bytes_ -= (c + 1) * granule;
                return b;
            }
            ++heap_allocations_;
            // The whole class size, so that the block can serve any size of its class later.
            return ::operator new((c + 1) * granule);
        }
        ++heap_allocations_;
        return ::operator new(bytes);
    }
    // Returns a block from allocate() of the same `bytes`.
    void deallocate(void* p, std::size_t bytes) noexcept {
        if (!p) return;
        const std::size_t c = class_of(bytes);
        const std::size_t size = (c + 1) * granule;
        if (c >= classes || kept_bytes_ + size > kept_limit_) {
            ::operator delete(p);
            return;
        }
        Block* b = static_cast<Block*>(p);
        b->next = free_[c];
        free_[c] = b;
        kept_bytes_ += size;
    }

    // Blocks taken from the heap so far (for tests: a warm arena takes none).
    std::size_t heap_allocations() const noexcept { return heap_allocations_; }

private:
    struct Block {
        Block* next;
    };
    // 0 bytes count as 1, as operator new has them.
    static std::size_t class_of(std::size_t bytes) noexcept {
        return bytes == 0 ? 0 : (bytes - 1) / granule;
    }

    std::array<Block*, classes> free_{};
    std::size_t kept_limit_;
    std::size_t kept_bytes_ = 0;
    std::size_t heap_allocations_ = 0;
};

template <class T>
class FieldAllocator {
public:
    using value_type = T;
    // The allocator travels with the fields it allocated for.
    using propagate_on_container_move_assignment = std::true_type;
    using propagate_on_container_copy_assignment = std::true_type;
    using propagate_on_container_swap = std::true_type;
    using is_always_equal = std::false_type;

    FieldAllocator() noexcept = default;
    explicit FieldAllocator(FieldArena* arena) noexcept : arena_(arena) {}
    template <class U>
    FieldAllocator(const FieldAllocator<U>& other) noexcept : arena_(other.arena()) {}

    T* allocate(std::size_t n) {
        static_assert(alignof(T) <= alignof(std::max_align_t));
        const std::size_t bytes = n * sizeof(T);
        return static_cast<T*>(arena_ ? arena_->allocate(bytes) : ::operator new(bytes));
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (arena_) arena_->deallocate(p, n * sizeof(T));
        else ::operator delete(p);
    }
    FieldArena* arena() const noexcept { return arena_; }

    template <class U>
    bool operator==(const FieldAllocator<U>& other) const noexcept {
        return arena_ == other.arena();
    }

private:
    FieldArena* arena_ = nullptr;
};

// The router's messages: Beast's, with their fields in a session's arena.
using ArenaFields = boost::beast::http::basic_fields<FieldAllocator<char>>;
using ArenaRequest = boost::beast::http::request<boost::beast::http::string_body, ArenaFields>;
using ArenaResponse = boost::beast::http::response<boost::beast::http::string_body, ArenaFields>;

}  // namespace ringlb
