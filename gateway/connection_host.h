// The seam between a connection and the loop that owns it: the services a
// reactor lends its connections (ConnectionContext) and the few things a
// connection tells its owner (ConnectionHost).
#pragma once

#include "gateway/types.h"

namespace gateway {

class BufferPool;
class Connection;
class ConnectionEvents;
class ConnectionTimers;
class EventLoop;
class FrameHandler;
class ReadScratch;
class UpstreamPool;
struct ReactorOptions;
struct ReactorStats;

// Loop-thread only. Implemented by the reactor that owns the connection.
class ConnectionHost {
 public:
  virtual ~ConnectionHost() = default;
  // Service `connection` again after this turn's events, without waiting for
  // a new one (edge-triggered readiness already consumed, budget spent).
  virtual void ServiceLater(Connection* connection) = 0;
  // True while the buffers of all reactors hold more than --max_queued_bytes
  // (until they drain below 7/8 of it).
  virtual bool OverBudget() = 0;
  // The connection stopped reading for want of buffer budget: service it
  // again once the buffers drained.
  virtual void WaitForBudget(Connection* connection) = 0;
  // The connection closed (its fd stays open until the end of this turn):
  // forget it.
  virtual void Closed(Connection* connection, CloseReason reason) = 0;
};

// Loop-thread only; one per reactor, outliving its connections. Plain
// pointers, so the hot path reaches each service without a virtual call.
struct ConnectionContext {
  const ReactorOptions* options;
  ReactorStats* stats;
  BufferPool* pool;
  ReadScratch* scratch;
  EventLoop* loop;  // its poller and its clock
  FrameHandler* handler;
  ConnectionTimers* timers;
  ConnectionEvents* events;
  ConnectionHost* host;
  int reactor_index;
  UpstreamPool* upstream;  // null unless upstream mode: frames go to backends, not to `handler`
};

}  // namespace gateway
