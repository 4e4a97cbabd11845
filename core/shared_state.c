// SPDX-License-Identifier: MIT
/*
 * shared_state.c - the region that outlives workers, and what the
 * supervisor does with it when a worker dies.
 */
#include "shared_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"

static uint64_t align_up(uint64_t x)
{
	return (x + 4095u) & ~(uint64_t)4095u;
}

struct ld_shared *ld_shared_create(uint32_t hold_max, uint32_t hold_copies, uint64_t hold_bytes,
				   uint64_t state_cap)
{
	uint64_t heap_off = align_up(sizeof(struct ld_shared));
	uint64_t free_off = align_up(heap_off + (uint64_t)(hold_max ? hold_max : 1) *
				     sizeof(struct ld_held));
	uint64_t store_off = align_up(free_off + (uint64_t)(hold_copies ? hold_copies : 1) *
				      sizeof(uint32_t));
	uint64_t store_size = (uint64_t)hold_copies * LD_PACKET_MAX;
	uint64_t hold_off = align_up(store_off + store_size);
	uint64_t hold_size = hold_bytes ? (hold_bytes < LD_STORE_MIN_BYTES ? LD_STORE_MIN_BYTES
									    : align_up(hold_bytes))
					: 0;
	uint64_t state_off = align_up(hold_off + hold_size);
	uint64_t size = align_up(state_off + state_cap);
	struct ld_shared *sh;
	uint32_t *fs;

	sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
		  -1, 0);
	if (sh == MAP_FAILED)
		return NULL;
	sh->size = size;
	sh->heap_off = heap_off;
	sh->free_off = free_off;
	sh->store_off = store_off;
	sh->store_size = store_size;
	sh->hold_off = hold_off;
	sh->hold_size = hold_size;
	sh->state_off = state_off;
	sh->state_cap = state_cap;
	sh->store_slots = hold_copies;
	sh->hold_max = hold_max;
	ld_heap_init_at(&sh->heap, (struct ld_held *)((uint8_t *)sh + heap_off), hold_max);
	fs = ld_shared_free_stack(sh);
	for (uint32_t i = 0; i < hold_copies; i++)
		fs[i] = hold_copies - 1 - i;
	sh->store_nfree = hold_copies;
	/* writes only the store's header and its next[] table: the chunks stay untouched */
	if (hold_size && !ld_store_init((uint8_t *)sh + hold_off, hold_size)) {
		munmap(sh, size);
		errno = EINVAL;
		return NULL;
	}
	return sh;
}

void ld_shared_destroy(struct ld_shared *sh)
{
	if (sh)
		munmap(sh, sh->size);
}

static const uint8_t *payload_of(struct ld_shared *sh, const struct ld_held *e)
{
	if (!(e->set & LD_SET_MODIFIED) || e->slot >= sh->store_slots || !e->len ||
	    e->len > LD_PACKET_MAX)
		return NULL;
	return ld_shared_store(sh) + (size_t)e->slot * LD_PACKET_MAX;
}

static void send_held(struct ld_shared *sh, struct ld_nfq *q, const struct ld_held *e, int drop)
{
	const uint8_t *payload = drop ? NULL : payload_of(sh, e);

	if (e->taken)
		return;   /* the original was dropped; its copy goes by raw socket */

	if (drop)
		ld_nfq_verdict(q, e->id, LD_DROP, 0, 0, 0, NULL, 0);
	else
		ld_nfq_verdict(q, e->id, e->verdict, e->set & (LD_SET_MARK | LD_SET_CT_MARK),
			       e->new_mark, e->new_ct_mark, payload, payload ? e->len : 0);
}

static int held_by_id(const void *a, const void *b)
{
	const struct ld_held *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int held_by_seq(const void *a, const void *b)
{
	const struct ld_held *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * The hold store's free list and counts may be half-written (a put or a
 * free cut short). Rebuild them from the copies the repaired heap still
 * references; a copy whose chain is broken (never seen so far) is lost:
 * its entry leaves the heap and is counted as dropped.
 */
static void repair_hold_store(struct ld_shared *sh)
{
	struct ld_store *st = ld_shared_hold_store(sh);
	struct ld_heap *h = &sh->heap;
	uint32_t *handles, *lens, n = 0, m, kept = 0;
	uint8_t *valid;

	if (!st)
		return;
	handles = malloc(((size_t)h->n + 1) * sizeof(*handles));
	lens = malloc(((size_t)h->n + 1) * sizeof(*lens));
	valid = malloc((size_t)h->n + 1);
	if (!handles || !lens || !valid) {
		ld_log("recovering held copies: out of memory; keeping the hold store as it is");
		goto out;
	}
	for (uint32_t i = 0; i < h->n; i++) {
		if (!h->v[i].taken)
			continue;
		handles[n] = h->v[i].copy;
		lens[n++] = h->v[i].len;
	}
	if (ld_store_rebuild(st, handles, lens, n, valid) < 0) {
		ld_log("recovering held copies: out of memory; keeping the hold store as it is");
		goto out;
	}
	m = h->n;
	for (uint32_t i = 0, k = 0; i < m; i++) {
		if (h->v[i].taken && !valid[k++]) {
			ld_log("recovering held copies: packet id %u: its copy is damaged; lost",
			       h->v[i].id);
			sh->c.dropped++;
			continue;
		}
		h->v[kept++] = h->v[i];
	}
	if (kept != m) {
		/* something was dropped: restore heap order, in insertion order */
		qsort(h->v, kept, sizeof(*h->v), held_by_seq);
		h->n = 0;
		for (uint32_t j = 0; j < kept; j++) {
			struct ld_held e = h->v[j];

			ld_heap_push(h, &e);
		}
	}
out:
	free(handles);
	free(lens);
	free(valid);
}

/*
 * A worker killed in the middle of a heap operation may leave an entry
 * twice, or a stale entry (already verdicted) sharing a copy slot with a
 * live one. Keep one entry per id; of entries sharing a slot keep the
 * newest (a slot is reused only after its holder was released); rebuild
 * the heap in insertion order and the free-slot stack from what is left.
 */
static void repair_heap(struct ld_shared *sh)
{
	struct ld_heap *h = &sh->heap;
	uint32_t n = h->n, kept = 0, *fs = ld_shared_free_stack(sh);
	struct ld_held *tmp;
	uint64_t *slot_seq = NULL;

	uint32_t nrel = sh->rel_n < LD_SHARED_REL_MAX ? sh->rel_n : LD_SHARED_REL_MAX;

	if (n > h->cap)
		n = h->cap;
	tmp = malloc(((size_t)n + nrel + 1) * sizeof(*tmp));
	if (sh->store_slots)
		slot_seq = calloc(sh->store_slots, sizeof(*slot_seq));
	if (!tmp || (sh->store_slots && !slot_seq)) {
		ld_log("recovering held packets: out of memory; keeping the heap as it is");
		free(tmp);
		free(slot_seq);
		return;
	}
	memcpy(tmp, h->v, (size_t)n * sizeof(*tmp));
	/*
	 * Taken copies in the release log were popped: a heap entry of the
	 * same id is stale (killed mid-pop). Those not sent yet go back in
	 * (once); those sent leave for good. Kernel-held ones were re-sent
	 * by ld_shared_recover() already.
	 */
	for (uint32_t i = 0; i < nrel; i++)
		if (sh->rel[i].taken)
			tmp[n++] = sh->rel[i];
	qsort(tmp, n, sizeof(*tmp), held_by_id);
	for (uint32_t i = 0; i < n;) {
		uint32_t j = i, sent = 0, from_rel = i;

		while (j < n && tmp[j].id == tmp[i].id) {
			if (tmp[j].taken == 2)
				sent = 1;
			if (tmp[j].taken)
				from_rel = j;   /* the log's copy is the newest state */
			j++;
		}
		if (!sent) {
			tmp[kept] = tmp[from_rel];
			if (tmp[kept].taken)
				tmp[kept].taken = 1;
			kept++;
		}
		i = j;
	}
	qsort(tmp, kept, sizeof(*tmp), held_by_seq);
	/* newest holder of each slot */
	for (uint32_t i = 0; i < kept; i++)
		if (tmp[i].slot < sh->store_slots)
			slot_seq[tmp[i].slot] = tmp[i].seq + 1;
	h->n = 0;
	for (uint32_t i = 0; i < kept; i++) {
		if (tmp[i].slot != LD_HELD_NO_SLOT &&
		    (tmp[i].slot >= sh->store_slots || slot_seq[tmp[i].slot] != tmp[i].seq + 1))
			continue;   /* stale: its slot belongs to a newer packet */
		ld_heap_push(h, &tmp[i]);
	}
	/* the free-slot stack: every slot no kept entry uses */
	if (slot_seq)
		memset(slot_seq, 0, sh->store_slots * sizeof(*slot_seq));
	for (uint32_t i = 0; i < h->n; i++)
		if (h->v[i].slot < sh->store_slots)
			slot_seq[h->v[i].slot] = 1;
	sh->store_nfree = 0;
	for (uint32_t s = sh->store_slots; s-- > 0;)
		if (!slot_seq[s])
			fs[sh->store_nfree++] = s;
	free(tmp);
	free(slot_seq);
	repair_hold_store(sh);
}

/* 0: not held; 1: held in the kernel queue; 2: taken over (a copy is held). */
static int is_held(const struct ld_shared *sh, uint32_t id)
{
	for (uint32_t i = 0; i < sh->heap.n && i < sh->heap.cap; i++)
		if (sh->heap.v[i].id == id)
			return sh->heap.v[i].taken ? 2 : 1;
	return 0;
}

static void count(struct ld_counters *c, uint32_t verdict)
{
	if ((verdict & 0xff) == LD_DROP)
		c->dropped++;
	else
		c->passed++;
}

uint32_t ld_shared_settle_sends(struct ld_shared *sh)
{
	struct ld_inject_log *log = &sh->sendlog;
	uint32_t n = __atomic_load_n(&log->n, __ATOMIC_ACQUIRE), marked = 0;
	uint32_t rel_n = sh->rel_n < LD_SHARED_REL_MAX ? sh->rel_n : LD_SHARED_REL_MAX;

	if (n > LD_INJECT_BATCH)
		n = LD_INJECT_BATCH;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t tag = log->tag[i];

		if (!log->mm[i].msg_len || tag >= rel_n || sh->rel[tag].taken != 1)
			continue;
		__atomic_store_n(&sh->rel[tag].taken, 2u, __ATOMIC_RELEASE);
		marked++;
	}
	__atomic_store_n(&log->n, 0, __ATOMIC_RELEASE);
	return marked;
}

uint32_t ld_shared_recover(struct ld_shared *sh, struct ld_nfq *q, uint32_t default_verdict)
{
	uint32_t given = 0, phase = sh->phase, settled;

	/*
	 * Killed inside its sendmmsg of copies, or after it but before it
	 * marked them: the kernel's msg_len stores say which ones left.
	 */
	settled = ld_shared_settle_sends(sh);
	if (settled)
		ld_log("recovering held copies: %u sent by the dead worker's last send, "
		       "not sent again", settled);

	/* Released packets whose verdict the dead worker may not have sent. */
	for (uint32_t i = 0; i < sh->rel_n && i < LD_SHARED_REL_MAX; i++)
		send_held(sh, q, &sh->rel[i], 0);
	ld_nfq_flush(q);
	repair_heap(sh);   /* reads the release log's taken copies */
	sh->rel_n = 0;

	if (phase == LD_PHASE_BATCH || phase == LD_PHASE_SEND) {
		for (uint32_t i = 0; i < sh->inhand_n && i < LD_BATCH_MAX; i++) {
			int held = is_held(sh, sh->inhand[i]);

			/* taken over: the copy is held; its original's DROP may be unsent */
			if (held == 2)
				ld_nfq_verdict(q, sh->inhand[i], LD_DROP, 0, 0, 0, NULL, 0);
			if (held)
				continue;   /* the next worker releases it */
			ld_nfq_verdict(q, sh->inhand[i], default_verdict, 0, 0, 0, NULL, 0);
			/* in SEND the dead worker had counted them already */
			if (phase == LD_PHASE_BATCH)
				count(&sh->c, default_verdict);
			given++;
		}
	} else if (phase == LD_PHASE_RECV) {
		/*
		 * Killed inside the receive: the ids read are unknown but start
		 * at rx_from. Verdict one batch's worth of them; any still unread
		 * get this verdict early, and the next worker's own is refused.
		 * The next worker must not take one of those over, though: its
		 * DROP would be refused too, but its copy would go out as a
		 * second packet (ld_shared_early()).
		 */
		sh->early_from = sh->rx_from;
		__atomic_store_n(&sh->early_n, LD_BATCH_MAX, __ATOMIC_RELEASE);
		for (uint32_t i = 0; i < LD_BATCH_MAX; i++) {
			uint32_t id = sh->rx_from + i;

			if (is_held(sh, id))
				continue;
			ld_nfq_verdict(q, id, default_verdict, 0, 0, 0, NULL, 0);
			given++;
		}
	}
	ld_nfq_flush(q);
	sh->c.recovered += given;
	sh->inhand_n = 0;
	sh->phase = LD_PHASE_IDLE;
	sh->busy_since_ns = 0;
	sh->yield = 0;
	return given;
}

uint32_t ld_shared_release_all(struct ld_shared *sh, struct ld_nfq *q, int drop)
{
	struct ld_held e;
	uint32_t n = 0;

	while (sh->heap.n) {
		ld_heap_pop(&sh->heap, &e);
		if (e.taken) {
			/* ld_shared_send_copies() ran first; what it could not send is lost */
			sh->c.dropped++;
			n++;
			continue;
		}
		send_held(sh, q, &e, drop);
		count(&sh->c, drop ? LD_DROP : e.verdict);
		n++;
		/* payloads stay valid: nothing reuses the store from here on */
	}
	ld_nfq_flush(q);
	sh->store_nfree = 0;
	return n;
}
