// The text table every subcommand prints: a header row, then one row per
// item, columns left-aligned and two spaces apart; a target that failed gets
// an error row (its TARGET cell, then "error: CODE: message").
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace gateway::ctl {

// Thread-compatible value.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}

  // Adds a row; missing cells print empty, extra cells are dropped.
  void AddRow(std::vector<std::string> cells);
  // Adds `target`'s failure. Its text does not widen the columns.
  void AddError(const std::string& target, const absl::Status& status);
  size_t rows() const { return rows_.size(); }
  // Returns the table, each line ending in '\n', no trailing spaces.
  std::string Render() const;

 private:
  struct Row {
    std::vector<std::string> cells;
    bool error = false;
  };
  std::vector<std::string> header_;
  std::vector<Row> rows_;
};

// "CODE: message", e.g. "UNAVAILABLE: failed to connect to all addresses".
std::string StatusText(const absl::Status& status);

}  // namespace gateway::ctl
