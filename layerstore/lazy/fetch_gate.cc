#include "layerstore/lazy/fetch_gate.h"

namespace layerfs {

FetchGate::Reader::Reader(FetchGate& gate) : gate_(gate) {
  std::lock_guard lk(gate_.mu_);
  ++gate_.readers_;
}

FetchGate::Reader::~Reader() {
  std::lock_guard lk(gate_.mu_);
  --gate_.readers_;
  gate_.slot_freed_.notify_all();
}

FetchGate::Background::Background(FetchGate& gate) : gate_(gate) {
  std::unique_lock lk(gate_.mu_);
  gate_.slot_freed_.wait(lk, [&] { return gate_.background_ < gate_.BackgroundLimit(); });
  ++gate_.background_;
}

FetchGate::Background::~Background() {
  std::lock_guard lk(gate_.mu_);
  --gate_.background_;
  gate_.slot_freed_.notify_all();
}

unsigned FetchGate::readers() const {
  std::lock_guard lk(mu_);
  return readers_;
}

unsigned FetchGate::background() const {
  std::lock_guard lk(mu_);
  return background_;
}

}  // namespace layerfs
