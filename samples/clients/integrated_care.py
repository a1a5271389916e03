"""Integrated Care: Dr Verhoeven consults the inclusions of his patient Peeters Jan (48031202166)
(README "Integrated Care"). Prints the patient's name and each inclusion's project, status and start."""

from sandbox_client import connect, header

client, me = connect("integrated-care")
answer = client.service.consultInclusions(
    **header(),
    CommonInput={"IsTest": True, "InputReference": "my-ref-1",
                 "Origin": {"Package": {"Name": "my-software"},
                            "CareProvider": {"Nihii": {"Quality": "doctor", "Value": me.nihii}, "Ssin": me.ssin}}},
    Patient={"Ssin": "48031202166"})
print("patient:", answer.Patient.LastName, answer.Patient.FirstName)
for inclusion in answer.Inclusion:
    print("inclusion:", inclusion.Project, inclusion.Status, inclusion.StartDate)
