#include "ringlb/field_arena.hpp"

namespace ringlb {

FieldArena::~FieldArena() {
    for (Block* b : free_) {
        while (b) {
            Block* next = b->next;
            ::operator delete(b);
            b = next;
        }
    }
}

void* FieldArena::allocate(std::size_t bytes) {
    if (bytes == 0) bytes = 1;
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

void FieldArena::deallocate(void* p, std::size_t bytes) noexcept {
    if (!p) return;
    if (bytes == 0) bytes = 1;
    const std::size_t c = class_of(bytes);
    const std::size_t size = (c + 1) * granule;
    if (c >= classes || kept_bytes_ + size > max_kept_bytes) {
        ::operator delete(p);
        return;
    }
    Block* b = static_cast<Block*>(p);
    b->next = free_[c];
    free_[c] = b;
    kept_bytes_ += size;
}

}  // namespace ringlb
