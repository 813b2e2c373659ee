// Table layout.
#include "ctl/table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace gateway::ctl {

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(header_.size());
  rows_.push_back(Row{std::move(cells), false});
}

void Table::AddError(const std::string& target, const absl::Status& status) {
  rows_.push_back(Row{{target, absl::StrCat("error: ", StatusText(status))}, true});
}

std::string Table::Render() const {
  std::vector<size_t> width(header_.size(), 0);
  for (size_t c = 0; c < header_.size(); ++c) width[c] = header_[c].size();
  for (const Row& row : rows_) {
    // An error row's target counts; its message may run past the columns.
    const size_t counted = row.error ? 1 : row.cells.size();
    for (size_t c = 0; c < counted && c < width.size(); ++c) width[c] = std::max(width[c], row.cells[c].size());
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < cells.size(); ++c) {
      if (c > 0) line += "  ";
      line += cells[c];
      if (c + 1 < cells.size() && c < width.size()) line.append(width[c] - std::min(width[c], cells[c].size()), ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    absl::StrAppend(&out, line, "\n");
  };
  emit(header_);
  for (const Row& row : rows_) emit(row.cells);
  return out;
}

std::string StatusText(const absl::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message());
}

}  // namespace gateway::ctl
