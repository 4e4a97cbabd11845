// SPDX-License-Identifier: MIT
/*
 * metrics_http.c - GET /metrics over HTTP/1.0, without blocking the loop it
 * lives in (metrics_http.h).
 *
 *   owner's epoll ── h->epfd ─┬─ listening socket → accept4 (non-blocking)
 *                             └─ connection k     → read request → render
 *                                                   → write as it drains → close
 */
#include "metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum {
	MH_CONNS   = 16,    /* connections served at once; more close the oldest */
	MH_REQ_MAX = 4096,  /* request head bytes kept */
	MH_EVENTS  = 16,
};

struct mh_conn {
	int fd;             /* -1: free */
	uint64_t serial;    /* age, to close the oldest */
	size_t req_len;
	char req[MH_REQ_MAX];
	struct ld_buf out;  /* response; sent from out_off */
	size_t out_off;
};

struct ld_metrics_http {
	int lfd, epfd;
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	ld_metrics_render_fn render;
	void *ctx;
	uint64_t serial;
	struct mh_conn conns[MH_CONNS];
};

/* Split ADDR:PORT / [ADDR6]:PORT into getaddrinfo's host and service. */
static int split_hostport(const char *addr, char *host, size_t hl, char *port, size_t pl)
{
	const char *colon;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');

		if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= hl)
			return -1;
		snprintf(host, hl, "%.*s", (int)(end - addr - 1), addr + 1);
		colon = end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || (size_t)(colon - addr) >= hl)
			return -1;
		snprintf(host, hl, "%.*s", (int)(colon - addr), addr);
	}
	if (!colon[1] || strlen(colon + 1) >= pl || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return -1;
	snprintf(port, pl, "%s", colon + 1);
	return 0;
}

/* A socket of the right family for @addr, bound (listen) or connected (client). */
static int open_socket(const char *addr, int listen_it, char *upath, size_t ulen, char *err,
		       size_t errlen)
{
	int flags = SOCK_STREAM | SOCK_CLOEXEC | (listen_it ? SOCK_NONBLOCK : 0);

	if (strncmp(addr, "unix:", 5) == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		const char *path = addr + 5;
		int fd;

		if (!*path || strlen(path) >= sizeof(sa.sun_path)) {
			snprintf(err, errlen, "%s: the socket path is empty or too long", addr);
			return -1;
		}
		memcpy(sa.sun_path, path, strlen(path) + 1);
		fd = socket(AF_UNIX, flags, 0);
		if (fd < 0) {
			snprintf(err, errlen, "socket: %s", strerror(errno));
			return -1;
		}
		if (!listen_it) {
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
				return fd;
			snprintf(err, errlen, "%s: %s", addr, strerror(errno));
			close(fd);
			return -1;
		}
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == EADDRINUSE) {
			/* a socket file left by an instance that is gone: nobody answers */
			int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			struct stat st;

			if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
			    errno == ECONNREFUSED && lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
				unlink(path);
			if (probe >= 0)
				close(probe);
			if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
				goto bound;
			errno = EADDRINUSE;
		} else {
			goto bound;
		}
		snprintf(err, errlen, "%s: %s", addr, strerror(errno));
		close(fd);
		return -1;
bound:
		snprintf(upath, ulen, "%s", path);
		if (listen(fd, MH_CONNS) < 0) {
			snprintf(err, errlen, "listen %s: %s", addr, strerror(errno));
			close(fd);
			unlink(path);
			upath[0] = 0;
			return -1;
		}
		return fd;
	}

	char host[256], port[16];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }, *ai;
	int rc, fd, one = 1;

	if (split_hostport(addr, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(err, errlen, "%s: not ADDR:PORT, [ADDR6]:PORT or unix:PATH", addr);
		return -1;
	}
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "%s: %s", addr, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, flags, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		freeaddrinfo(ai);
		return -1;
	}
	if (listen_it) {
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, MH_CONNS) < 0) {
			snprintf(err, errlen, "%s: %s", addr, strerror(errno));
			close(fd);
			fd = -1;
		}
	} else if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		snprintf(err, errlen, "%s: %s", addr, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

int ld_metrics_listen(const char *addr, char *upath, size_t ulen, char *err, size_t errlen)
{
	upath[0] = '\0';
	return open_socket(addr, 1, upath, ulen, err, errlen);
}

int ld_metrics_connect(const char *addr, char *err, size_t errlen)
{
	char unused[8];

	return open_socket(addr, 0, unused, sizeof(unused), err, errlen);
}

static void conn_close(struct ld_metrics_http *h, struct mh_conn *c)
{
	if (c->fd < 0)
		return;
	epoll_ctl(h->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->req_len = 0;
	c->out.len = 0;
	c->out_off = 0;
}

struct ld_metrics_http *ld_metrics_http_open(const char *addr, ld_metrics_render_fn render,
					     void *ctx, char *err, size_t errlen)
{
	return ld_metrics_http_adopt(addr, -1, render, ctx, err, errlen);
}

struct ld_metrics_http *ld_metrics_http_adopt(const char *addr, int lfd,
					      ld_metrics_render_fn render, void *ctx,
					      char *err, size_t errlen)
{
	struct ld_metrics_http *h = calloc(1, sizeof(*h));
	struct epoll_event ev = { .events = EPOLLIN };

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->render = render;
	h->ctx = ctx;
	h->epfd = -1;
	for (int i = 0; i < MH_CONNS; i++)
		h->conns[i].fd = -1;
	/* an inherited socket is the supervisor's to unlink (unix_path stays "") */
	h->lfd = lfd >= 0 ? lfd : open_socket(addr, 1, h->unix_path, sizeof(h->unix_path), err,
						errlen);
	if (h->lfd < 0)
		goto fail;
	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	ev.data.ptr = NULL;   /* NULL: the listening socket */
	if (h->epfd < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->lfd, &ev) < 0) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto fail;
	}
	return h;
fail:
	ld_metrics_http_close(h);
	return NULL;
}

int ld_metrics_http_fd(const struct ld_metrics_http *h)
{
	return h->epfd;
}

static void accept_all(struct ld_metrics_http *h)
{
	for (;;) {
		int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct mh_conn *c = NULL, *oldest = &h->conns[0];
		struct epoll_event ev = { .events = EPOLLIN };

		if (fd < 0)
			return;   /* EAGAIN, or a connection that went away: nothing to do */
		for (int i = 0; i < MH_CONNS && !c; i++) {
			if (h->conns[i].fd < 0)
				c = &h->conns[i];
			else if (h->conns[i].serial < oldest->serial)
				oldest = &h->conns[i];
		}
		if (!c) {
			conn_close(h, oldest);
			c = oldest;
		}
		c->fd = fd;
		c->serial = ++h->serial;
		ev.data.ptr = c;
		if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			conn_close(h, c);
	}
}

static void respond(struct ld_metrics_http *h, struct mh_conn *c, const char *status,
		    const char *body)
{
	struct ld_buf b = { 0 };
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };

	if (body)
		ld_buf_printf(&b, "%s", body);
	else
		h->render(h->ctx, &b);
	if (b.failed) {
		ld_buf_free(&b);
		conn_close(h, c);
		return;
	}
	ld_buf_printf(&c->out, "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; "
		      "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
		      b.len);
	if (b.len)
		ld_buf_printf(&c->out, "%.*s", (int)b.len, b.p);
	ld_buf_free(&b);
	c->out_off = 0;
	if (c->out.failed || epoll_ctl(h->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		conn_close(h, c);
}

static void read_request(struct ld_metrics_http *h, struct mh_conn *c)
{
	ssize_t n = read(c->fd, c->req + c->req_len, sizeof(c->req) - 1 - c->req_len);

	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			conn_close(h, c);
		return;
	}
	c->req_len += (size_t)n;
	c->req[c->req_len] = 0;
	if (!strstr(c->req, "\r\n\r\n") && !strstr(c->req, "\n\n")) {
		if (c->req_len == sizeof(c->req) - 1)
			respond(h, c, "431 Request Header Fields Too Large", "request too large\n");
		return;
	}
	if (strncmp(c->req, "GET ", 4) != 0)
		respond(h, c, "405 Method Not Allowed", "only GET /metrics\n");
	else if (strncmp(c->req + 4, "/metrics", 8) != 0 || !strchr(" ?", c->req[12]))
		respond(h, c, "404 Not Found", "luadivert serves GET /metrics\n");
	else
		respond(h, c, "200 OK", NULL);
}

static void write_response(struct ld_metrics_http *h, struct mh_conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			break;
		}
		c->out_off += (size_t)n;
	}
	conn_close(h, c);
}

void ld_metrics_http_handle(struct ld_metrics_http *h)
{
	struct epoll_event evs[MH_EVENTS];
	int n = epoll_wait(h->epfd, evs, MH_EVENTS, 0);

	for (int i = 0; i < n; i++) {
		struct mh_conn *c = evs[i].data.ptr;

		if (!c)
			accept_all(h);
		else if (c->fd < 0)
			continue;   /* closed earlier in this round */
		else if (evs[i].events & EPOLLOUT)
			write_response(h, c);
		else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			read_request(h, c);
	}
}

void ld_metrics_http_close(struct ld_metrics_http *h)
{
	if (!h)
		return;
	for (int i = 0; i < MH_CONNS; i++) {
		conn_close(h, &h->conns[i]);
		ld_buf_free(&h->conns[i].out);
	}
	if (h->lfd >= 0)
		close(h->lfd);
	if (h->unix_path[0])
		unlink(h->unix_path);
	if (h->epfd >= 0)
		close(h->epfd);
	free(h);
}
