/*
 * kvmlab-frames: send exact Ethernet frames and report which interfaces receive them.
 *
 * Runs inside the tiny guest. Reads a plan on standard input, one line per item:
 *
 *   listen NETNS IFNAME               capture on IFNAME in network namespace NETNS
 *   send AT_US NETNS IFNAME HEXFRAME   send the frame (hex bytes) at AT_US microseconds
 *   end AT_US                          stop listening at AT_US microseconds
 *   then COMMAND...                    run COMMAND (busybox sh -c) right then, before
 *                                      the sockets close (closing hundreds of them can
 *                                      take seconds in an emulated guest)
 *
 * NETNS "-" is the namespace the program runs in. "kvmlab-frames netns NAME..." instead
 * creates network namespaces the way "ip netns add" does (a bind mount of a new
 * namespace on /run/netns/NAME), all in one process.
 * Times count from the moment the
 * plan is read. For every frame received on a listened interface it prints
 *
 *   RX T_US NETNS IFNAME VLAN HEXFRAME
 *
 * where VLAN is the 802.1Q tag the kernel took off the frame (TCI in decimal, or "-")
 * and HEXFRAME is the frame as it was received (its first 64 bytes). It first prints "START T0_US", the
 * monotonic clock (in microseconds) at which its times start. Frames the interface sent itself
 * (PACKET_OUTGOING) are not reported.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_IF 2048
#define MAX_SEND 8192
#define MAX_FRAME 1600

struct iface { char ns[64]; char name[32]; int fd; int ifindex; };
struct sending { long long at_us; int iface; unsigned char frame[MAX_FRAME]; int len; };

static struct iface ifs[MAX_IF];
static int n_ifs;
static struct sending sends[MAX_SEND];
static int n_sends;
static int home_ns = -1;

static void die(const char *what, const char *arg) {
    fprintf(stderr, "kvmlab-frames: %s %s: %s\n", what, arg, strerror(errno));
    exit(2);
}

static long long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void enter_ns(const char *ns) {
    if (strcmp(ns, "-") == 0) {
        if (setns(home_ns, CLONE_NEWNET) < 0) die("setns", "(home)");
        return;
    }
    char path[128];
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("open", path);
    if (setns(fd, CLONE_NEWNET) < 0) die("setns", path);
    close(fd);
}

/* An AF_PACKET socket on (ns, name), opened once and reused for sending and listening. */
static int iface_index(const char *ns, const char *name) {
    for (int i = 0; i < n_ifs; i++)
        if (!strcmp(ifs[i].ns, ns) && !strcmp(ifs[i].name, name)) return i;
    if (n_ifs == MAX_IF) { errno = E2BIG; die("too many interfaces at", name); }
    struct iface *f = &ifs[n_ifs];
    snprintf(f->ns, sizeof f->ns, "%s", ns);
    snprintf(f->name, sizeof f->name, "%s", name);
    enter_ns(ns);
    f->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    if (f->fd < 0) die("socket on", name);
    f->ifindex = if_nametoindex(name);
    if (!f->ifindex) die("no interface", name);
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = f->ifindex};
    if (bind(f->fd, (struct sockaddr *)&sll, sizeof sll) < 0) die("bind", name);
    int one = 1;
    if (setsockopt(f->fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0)
        die("PACKET_AUXDATA", name);
    enter_ns("-");
    return n_ifs++;
}

static int parse_hex(const char *hex, unsigned char *out) {
    int n = 0;
    while (hex[0] && hex[1] && n < MAX_FRAME) {
        unsigned int b;
        if (sscanf(hex, "%2x", &b) != 1) break;
        out[n++] = (unsigned char)b;
        hex += 2;
    }
    return n;
}

static void drain(int i, long long t0, int *listening) {
    unsigned char buf[MAX_FRAME + 64];
    for (;;) {
        char control[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
        struct sockaddr_ll from;
        struct iovec iov = {buf, sizeof buf};
        struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov,
                             .msg_iovlen = 1, .msg_control = control,
                             .msg_controllen = sizeof control};
        ssize_t len = recvmsg(ifs[i].fd, &msg, 0);
        if (len < 0) return;
        if (!listening[i] || from.sll_pkttype == PACKET_OUTGOING) continue;
        long vlan = -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
            struct tpacket_auxdata aux;
            memcpy(&aux, CMSG_DATA(c), sizeof aux);
            if (aux.tp_status & TP_STATUS_VLAN_VALID) vlan = aux.tp_vlan_tci;
        }
        printf("RX %lld %s %s ", now_us() - t0, ifs[i].ns, ifs[i].name);
        if (vlan < 0) printf("- "); else printf("%ld ", vlan);
        for (ssize_t k = 0; k < len && k < 64; k++) printf("%02x", buf[k]);
        printf("\n");
    }
}

static void run_then(const char *cmd) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) die("fork for", cmd);
    if (pid == 0) {
        execl("/bin/busybox", "sh", "-c", cmd, (char *)NULL);
        die("exec", cmd);
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "kvmlab-frames: `%s` failed\n", cmd);
        exit(2);
    }
}

static int add_netns(int argc, char **argv) {
    for (int i = 2; i < argc; i++) {
        char path[128];
        snprintf(path, sizeof path, "/run/netns/%s", argv[i]);
        int fd = open(path, O_RDONLY | O_CREAT | O_EXCL, 0);
        if (fd < 0) die("create", path);
        close(fd);
        pid_t pid = fork();
        if (pid < 0) die("fork for", path);
        if (pid == 0) {
            if (unshare(CLONE_NEWNET) < 0) die("unshare for", path);
            if (mount("/proc/self/ns/net", path, "none", MS_BIND, NULL) < 0)
                die("mount", path);
            _exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
            return 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "netns")) return add_netns(argc, argv);
    /* the "then" line reads the tables of every bridge namespace: it can be long */
    static char line[1 << 17], then_cmd[1 << 17];
    char ns[64], name[32], hex[2 * MAX_FRAME + 2];
    long long at, end_us = 0;
    int listening[MAX_IF] = {0};
    home_ns = open("/proc/self/ns/net", O_RDONLY);
    if (home_ns < 0) die("open", "/proc/self/ns/net");
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        if (!strchr(line, '\n') && !feof(stdin)) {
            errno = E2BIG;
            die("plan line too long:", "");
        }
        if (sscanf(line, "listen %63s %31s", ns, name) == 2) {
            listening[iface_index(ns, name)] = 1;
        } else if (sscanf(line, "send %lld %63s %31s %3201s", &at, ns, name, hex) == 4) {
            if (n_sends == MAX_SEND) { errno = E2BIG; die("too many frames", ""); }
            struct sending *s = &sends[n_sends++];
            s->at_us = at;
            s->iface = iface_index(ns, name);
            s->len = parse_hex(hex, s->frame);
        } else if (sscanf(line, "end %lld", &at) == 1) {
            end_us = at;
        } else if (!strncmp(line, "then ", 5)) {
            snprintf(then_cmd, sizeof then_cmd, "%s", line + 5);
        } else if (line[0] != '\n' && line[0] != '#') {
            fprintf(stderr, "kvmlab-frames: cannot read plan line: %s", line);
            return 2;
        }
    }
    long long t0 = now_us();
    printf("START %lld\n", t0);
    int next = 0;
    for (;;) {
        long long t = now_us() - t0;
        while (next < n_sends && sends[next].at_us <= t) {
            struct sending *s = &sends[next++];
            if (send(ifs[s->iface].fd, s->frame, s->len, 0) != s->len)
                die("send on", ifs[s->iface].name);
            printf("TX %lld %s %s\n", now_us() - t0, ifs[s->iface].ns, ifs[s->iface].name);
        }
        if (next == n_sends && t >= end_us) break;
        long long wake = next < n_sends ? sends[next].at_us : end_us;
        struct pollfd pfd[MAX_IF];
        for (int i = 0; i < n_ifs; i++) pfd[i] = (struct pollfd){ifs[i].fd, POLLIN, 0};
        int timeout_ms = (int)((wake - t + 999) / 1000);
        if (poll(pfd, n_ifs, timeout_ms < 0 ? 0 : timeout_ms) < 0 && errno != EINTR)
            die("poll", "");
        for (int i = 0; i < n_ifs; i++)
            if (pfd[i].revents & POLLIN) drain(i, t0, listening);
    }
    for (int i = 0; i < n_ifs; i++) drain(i, t0, listening);
    printf("END %lld\n", now_us() - t0);
    if (then_cmd[0]) run_then(then_cmd);
    fflush(stdout);
    _exit(0);
}
