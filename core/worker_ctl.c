// SPDX-License-Identifier: MIT
/*
 * worker_ctl.c - the worker's side of the control socket (worker.h's
 * protocol): wait for G before serving, answer S (save) and H (hand over),
 * stop at Q (worker_priv.h).
 */
#include "worker_priv.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

static void ctl_send(struct ld_worker *w, char m)
{
	if (send(w->ctl_fd, &m, 1, MSG_NOSIGNAL) != 1)
		ld_log("worker: telling the supervisor '%c': %s", m, strerror(errno));
}

/* One message; 0 on EOF (the supervisor is gone) or error. */
static int ctl_recv(struct ld_worker *w, char *m)
{
	ssize_t n;

	do
		n = recv(w->ctl_fd, m, 1, 0);
	while (n < 0 && errno == EINTR);
	__atomic_store_n(&w->sh->yield, 0, __ATOMIC_RELEASE);
	return n == 1;
}

/* Q: stop, release held packets, call on_stop. H or EOF: just go. */
static void ctl_stop(struct ld_worker *w, char m)
{
	w->stop = 1;
	w->release_on_exit = m == LD_CTL_QUIT;
}

/* S: save the policy's state for a successor, then wait paused for R, H or Q. */
static void ctl_save(struct ld_worker *w)
{
	struct ld_shared *sh = w->sh;
	size_t len = 0;
	int rc = 0;
	char m;

	if (w->lua)
		rc = ld_lua_save(w->lua, ld_shared_state(sh), sh->state_cap, &len, sh->err,
				 sizeof(sh->err));
	sh->state_len = rc == 0 ? len : 0;
	ctl_send(w, rc == 0 ? LD_CTL_SAVED : LD_CTL_SAVE_FAILED);
	for (;;) {
		if (!ctl_recv(w, &m)) {
			ctl_stop(w, 0);
			return;
		}
		if (m == LD_CTL_RESUME)
			return;
		if (m == LD_CTL_HANDOVER || m == LD_CTL_QUIT) {
			ctl_stop(w, m);
			return;
		}
	}
}

void worker_handle_ctl(struct ld_worker *w)
{
	char m;

	if (!ctl_recv(w, &m)) {
		ctl_stop(w, 0);
		return;
	}
	if (m == LD_CTL_SAVE)
		ctl_save(w);
	else if (m == LD_CTL_QUIT || m == LD_CTL_HANDOVER)
		ctl_stop(w, m);
}

/* Before serving: V, then on_reload (L) if asked, until G. */
int worker_await_go(struct ld_worker *w)
{
	struct ld_shared *sh = w->sh;
	char m;

	ctl_send(w, LD_CTL_VALID);
	while (!w->serving) {
		if (!ctl_recv(w, &m)) {
			ctl_stop(w, 0);
			return LD_WEXIT_OK;
		}
		switch (m) {
		case LD_CTL_STATE:
			if (w->lua && ld_lua_restore(w->lua, ld_shared_state(sh), sh->state_len,
						     sh->err, sizeof(sh->err)) < 0)
				return LD_WEXIT_POLICY;
			ctl_send(w, LD_CTL_READY);
			break;
		case LD_CTL_GO:
			w->serving = 1;
			break;
		case LD_CTL_QUIT:
		case LD_CTL_HANDOVER:
			ctl_stop(w, 0);
			return LD_WEXIT_OK;
		default:
			break;
		}
	}
	return LD_WEXIT_OK;
}
