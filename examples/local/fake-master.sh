#!/bin/sh
# Stand-in for kvsWebrtcClientMaster: prints its lines, becomes ready after 0.2-1.5 s, runs until
# SIGINT (clean stop, exit 0) and writes the first signal it got to ./signal.txt.
# A channel whose name ends in 7 fails like a bad channel: error line, exit 1.
channel=${1:?usage: fake-master.sh CHANNEL}
trap 'echo INT >> signal.txt; echo "Cleaning up...."; echo "Cleanup done"; exit 0' INT
trap 'echo TERM >> signal.txt; exit 143' TERM
echo "[KVS Master] Using trickleICE by default"
echo "[KVS Master] Created signaling channel $channel"
# 200..1500 ms, from awk's random numbers (POSIX sh has no $RANDOM)
delay=$(awk -v seed=$$ 'BEGIN { srand(seed); printf "%.3f", 0.2 + rand() * 1.3 }')
sleep "$delay" & wait $!
case $channel in
  *7) echo "[KVS Master] Signaling client generated an error 0x5d000003"; exit 1 ;;
esac
echo "[KVS Master] Channel $channel set up done"
while :; do sleep 1 & wait $!; done
