/* kvmlab-nat: the UDP ends of kvmlab's NAT experiment inside the tiny guest.
 *
 *   kvmlab-nat serve PORT           print "SEEN ADDRESS PORT PAYLOAD" for every datagram
 *                                   that reaches UDP port PORT (until killed)
 *   kvmlab-nat send SPORT DST DPORT PAYLOAD
 *                                   send PAYLOAD from UDP source port SPORT to DST:DPORT
 *
 * The server prints the source address and port it sees: after masquerading, the
 * router's outside address and the port the NAT chose.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int udp_socket(int port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
    struct sockaddr_in a;
    if (fd < 0) { perror("socket"); exit(1); }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); exit(1); }
    return fd;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "serve") == 0) {
        int fd = udp_socket(atoi(argv[2]));
        char buf[512];
        for (;;) {
            struct sockaddr_in from;
            socklen_t len = sizeof from;
            ssize_t n = recvfrom(fd, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &len);
            if (n < 0) continue;
            buf[n] = 0;
            for (ssize_t i = 0; i < n; i++)
                if (buf[i] <= ' ' || buf[i] > '~') buf[i] = '_';
            printf("SEEN %s %d %s\n", inet_ntoa(from.sin_addr), ntohs(from.sin_port), buf);
            fflush(stdout);
        }
    }
    if (argc == 6 && strcmp(argv[1], "send") == 0) {
        int fd = udp_socket(atoi(argv[2]));
        struct sockaddr_in to;
        memset(&to, 0, sizeof to);
        to.sin_family = AF_INET;
        to.sin_port = htons(atoi(argv[4]));
        if (inet_pton(AF_INET, argv[3], &to.sin_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
        if (sendto(fd, argv[5], strlen(argv[5]), 0, (struct sockaddr *)&to, sizeof to) < 0) {
            perror("sendto");
            return 1;
        }
        return 0;
    }
    fprintf(stderr, "usage: kvmlab-nat serve PORT | send SPORT DST DPORT PAYLOAD\n");
    return 2;
}
