/* SPDX-License-Identifier: MIT */
/*
 * shared_state.h - what must outlive a worker process.
 *
 * The supervisor maps one MAP_SHARED region before it forks any worker;
 * every worker inherits it at the same address. It holds what the packets
 * of the queue depend on when the process running the policy dies:
 *
 *   +--------------------+  offset 0
 *   | struct ld_shared   |  counters, heartbeat, ids in hand, the heap's
 *   |                    |  header, the release log, the worker's error text
 *   +--------------------+  heap_off
 *   | struct ld_held[]   |  the timer heap of held packets (hold_max)
 *   +--------------------+  free_off
 *   | uint32_t[]         |  stack of free copy-store slots
 *   +--------------------+  store_off
 *   | copy store         |  store_size bytes (held packets' changed bytes)
 *   +--------------------+  hold_off
 *   | hold store         |  hold_size bytes (--hold-bytes): copies of held
 *   |                    |  packets of local origin (hold_store.h), chunk
 *   |                    |  chains linked by number; 0 bytes when disabled
 *   +--------------------+  state_off
 *   | reload state       |  state_cap bytes: save() of the old worker,
 *   +--------------------+  serialized, read by the new one's on_reload
 *
 * Regions are found by offset from the start, so a region can be resized
 * or added (e.g. a byte-bounded store) without touching the others. The
 * store, hold-store and state regions are MAP_NORESERVE: pages exist once
 * touched, so a 64 MiB --hold-bytes costs nothing until copies are made.
 *
 * The hold store's allocator metadata (free list, counts) lives in the
 * region too, but is not crash-consistent: a worker killed inside a put or
 * a free leaves it half-written. ld_shared_recover() does not trust it; it
 * rebuilds it from what is: the chains of the copies that the repaired heap
 * (and the unsent part of the release log) still reference are in use,
 * every other chunk is free. A chain is never written while its copy is
 * referenced (put links free chunks before the heap push; free relinks a
 * chain only after its copy was sent), so those chains are intact.
 *
 * One writer at a time: the serving worker writes the packet fields; the
 * supervisor reads them, and writes them only while no worker serves
 * (after it reaped the dead one, before the next one starts).
 */
#ifndef LD_SHARED_STATE_H
#define LD_SHARED_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "counters.h"
#include "hold_store.h"
#include "inject.h"
#include "ld_abi.h"
#include "nfq.h"
#include "policy_rules.h"
#include "timer_heap.h"

enum {
	LD_SHARED_REL_MAX = 256,          /* popped held packets whose verdict may be unsent */
	LD_SHARED_ERR_MAX = 1024,         /* worker's error message for the supervisor */
	LD_SHARED_MODULES_MAX = 16384,    /* the policy's required files, one per line */
	LD_STATE_MAX_DEFAULT = 16 << 20,  /* serialized save() state, bytes */
};

/* What the serving worker is doing (ld_shared.phase). */
enum ld_worker_phase {
	LD_PHASE_IDLE = 0,   /* nothing in hand */
	LD_PHASE_RECV = 1,   /* in recvmmsg: packets from rx_from on may be in hand */
	LD_PHASE_BATCH = 2,  /* inhand[] read, policy running, no verdict counted yet */
	LD_PHASE_SEND = 3,   /* policy done, verdicts being sent */
};

struct ld_shared {
	/* layout, set once by the supervisor */
	uint64_t size;
	uint64_t heap_off;
	uint64_t free_off;
	uint64_t store_off;
	uint64_t store_size;
	uint64_t hold_off;
	uint64_t hold_size;          /* 0: no hold store (copies disabled) */
	uint64_t state_off;
	uint64_t state_cap;
	uint32_t store_slots;        /* store_size / LD_PACKET_MAX */
	uint32_t hold_max;

	/* written by the serving worker */
	volatile uint32_t phase;            /* enum ld_worker_phase */
	volatile uint32_t rx_from;          /* smallest id the receive in progress can return */
	volatile uint64_t busy_since_ns;    /* start of the running policy call, 0 = none */
	volatile uint32_t inhand_n;
	uint32_t inhand[LD_BATCH_MAX];      /* ids of the batch being handled */
	volatile uint32_t last_id;          /* newest id read from the queue */
	volatile uint32_t seen_any;
	uint32_t store_nfree;               /* entries on the free-slot stack */
	volatile uint32_t rel_n;            /* release log: popped, verdict maybe unsent;
					     * .taken 1 = copy not sent yet, 2 = sent */
	struct ld_held rel[LD_SHARED_REL_MAX];
	/* the worker's raw sendmmsg of taken copies in flight; tag = rel index:
	 * the kernel's msg_len says which of them left (inject.h) */
	struct ld_inject_log sendlog;
	/* written by the supervisor's recovery: ids it verdicted without
	 * knowing whether they were read (killed inside the receive); they may
	 * still wait in the queue socket for the next worker (ld_shared_early()) */
	uint32_t early_from;
	volatile uint32_t early_n;
	struct ld_heap heap;                /* .v = base + heap_off, same address in all */
	struct ld_counters c;

	/* supervisor -> worker */
	volatile uint32_t yield;     /* leave the batch loop: a command is waiting */
	volatile uint32_t offload_gen; /* issue 16: the generation divert.OFFLOAD marks with,
	                                * the one the installed rules match (0: off) */

	/* worker -> supervisor */
	uint64_t state_len;          /* bytes of serialized state at state_off */
	char err[LD_SHARED_ERR_MAX]; /* why the worker refused to start or reload */
	/* set by a loading worker before it says V (issue 18, issue 14): the
	 * rules its policy declares, compiled and swapped by the supervisor,
	 * and the modules it required, watched by the supervisor's --watch */
	struct ld_policy_rules decl;
	char modules[LD_SHARED_MODULES_MAX];
};

/**
 * ld_shared_create() - map the shared region
 * @hold_max: most held packets (heap entries)
 * @hold_copies: copy-store slots of LD_PACKET_MAX bytes
 * @hold_bytes: bytes of the hold store for taken-over copies (0: none)
 * @state_cap: room for serialized reload state
 *
 * Return: the region (heap initialised, every slot free, the hold store
 * laid out), or NULL (errno).
 */
struct ld_shared *ld_shared_create(uint32_t hold_max, uint32_t hold_copies, uint64_t hold_bytes,
				   uint64_t state_cap);

/**
 * ld_shared_destroy() - unmap the region
 * @sh: region, may be NULL
 */
void ld_shared_destroy(struct ld_shared *sh);

/* Where the regions are: computed from offsets, never stored as pointers. */
static inline uint8_t *ld_shared_store(struct ld_shared *sh)
{
	return (uint8_t *)sh + sh->store_off;
}

static inline uint32_t *ld_shared_free_stack(struct ld_shared *sh)
{
	return (uint32_t *)((uint8_t *)sh + sh->free_off);
}

/* The hold store (hold_store.h), or NULL when --hold-bytes is 0. */
static inline struct ld_store *ld_shared_hold_store(struct ld_shared *sh)
{
	return sh->hold_size ? (struct ld_store *)((uint8_t *)sh + sh->hold_off) : NULL;
}

static inline uint8_t *ld_shared_state(struct ld_shared *sh)
{
	return (uint8_t *)sh + sh->state_off;
}

/**
 * ld_shared_recover() - after the serving worker died: verdict what it had
 * in hand, re-send the verdicts of released packets it may not have sent,
 * and repair the held-packet heap and the free-slot stack for the next one
 * @sh: region
 * @q: the queue (the supervisor's copy of the inherited socket)
 * @default_verdict: verdict for the packets in hand
 *
 * Verdicts sent twice are harmless: the kernel refuses a verdict for an id
 * it no longer holds (ENOENT). Held packets keep their release time.
 * Taken-over copies (sent through a raw socket, so a second send would be
 * a second packet) are never sent here: first the dead worker's sendmmsg
 * in flight is settled (ld_shared_settle_sends()), then those in the
 * release log not marked sent go back into the heap for the next worker,
 * those marked sent leave it; a taken packet in hand gets DROP (its
 * original, again); the hold store's free state is rebuilt from the
 * copies still referenced.
 * Return: packets in hand that got @default_verdict.
 */
uint32_t ld_shared_recover(struct ld_shared *sh, struct ld_nfq *q, uint32_t default_verdict);

/**
 * ld_shared_early() - whether @id may have got its verdict from the
 * supervisor already (ld_shared_recover() of a worker killed inside the
 * receive), before any worker decided it
 * @sh: region
 * @id: packet id
 *
 * Such a packet may still be read by the next worker. A verdict of its own
 * is then refused (harmless), but a copy taken over and sent later would
 * be a second packet: the worker keeps these in the kernel queue instead.
 * Return: nonzero when @id is in the last such window of ids.
 */
static inline int ld_shared_early(const struct ld_shared *sh, uint32_t id)
{
	return id - sh->early_from < __atomic_load_n(&sh->early_n, __ATOMIC_ACQUIRE);
}

/**
 * ld_shared_settle_sends() - mark sent the release-log copies the kernel
 * took in the sendmmsg logged in sh->sendlog
 * @sh: region
 *
 * The worker calls it after each logged call (inject.h: inj->settle), the
 * supervisor in ld_shared_recover() for a worker killed before it could:
 * inside the call or just after it. A logged message with msg_len != 0
 * left; its release-log entry (the tag) becomes "sent" (taken = 2) and is
 * not sent again. Tags are checked against the log's bounds: the worker
 * writes them, the supervisor trusts nothing it cannot check.
 * Return: entries it marked sent.
 */
uint32_t ld_shared_settle_sends(struct ld_shared *sh);

/**
 * ld_shared_release_all() - verdict every held packet now (the supervisor,
 * when no worker is left to do it at exit); duplicates are not injected,
 * taken-over copies are left in the heap (ld_shared_send_copies() sends
 * them: it needs raw sockets)
 * @sh: region
 * @q: the queue
 * @drop: drop them instead of sending their own verdicts
 *
 * Return: packets released.
 */
uint32_t ld_shared_release_all(struct ld_shared *sh, struct ld_nfq *q, int drop);

/**
 * ld_shared_send_copies() - send (or drop) every taken-over copy still held,
 * from the supervisor at exit when no worker did (core/shared_copies.c)
 * @sh: region
 * @drop: drop them instead
 *
 * Return: copies sent or dropped.
 */
uint32_t ld_shared_send_copies(struct ld_shared *sh, int drop);

#endif /* LD_SHARED_STATE_H */
