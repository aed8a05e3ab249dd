// Whether the client of a whole (non-streamed) answer is still there. httplib 0.11 gives a
// handler no socket and writes nothing until the answer is complete, so a client that leaves is
// only seen by looking at the connection itself: the handler's socket is the one whose ends are
// the request's local and remote addresses, and a peer that closed reads as end of file.
#pragma once

#include <string>

namespace modelone {

class ClientSocket {
 public:
  // Finds the connection (local_port, remote_addr:remote_port) among this process's sockets;
  // when none is found (an address httplib did not fill), gone() always answers false.
  ClientSocket(const std::string& remote_addr, int remote_port, int local_port);
  // True once the peer has closed its end (a pipelined next request still counts as present).
  bool gone() const;

 private:
  int fd_ = -1;
};

}  // namespace modelone
